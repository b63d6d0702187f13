"""What analysts' feedback holds back among messages already in the outbox.

New intents are held back by alerts/outbox_rules.py and alerts/planner.py as they are planned;
these rules answer for what was queued before the label or the mute arrived.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from monitor.types import AlertKind, AlertStatus, OutboxItem


def held_by_false_alarm(
    article_id: int, alert_ids: Collection[int], pending: Sequence[OutboxItem]
) -> list[int]:
    """Pending items of the narrative the false alarm stops: its article's alerts on other
    channels, and the replies ("also published by") under any of them."""
    parents = set(alert_ids)
    return [
        item.id for item in pending if item.status is AlertStatus.PENDING and (
            (item.kind is AlertKind.ALERT and item.article_id == article_id)
            or (item.kind is AlertKind.REPLY and item.parent_id in parents)
        )
    ]


def held_by_mute(pending: Sequence[OutboxItem]) -> list[int]:
    """Every pending message of a muted narrative, flood summaries too: it stops interrupting at once."""
    return [item.id for item in pending if item.status is AlertStatus.PENDING
            and item.kind in (AlertKind.ALERT, AlertKind.REPLY, AlertKind.SUMMARY)]
