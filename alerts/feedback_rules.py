"""What analysts' feedback holds back among messages already in the outbox.

New intents are held back by alerts/outbox_rules.py and alerts/planner.py as they are planned;
these rules answer for what was queued before the label or the mute arrived.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from monitor.types import AlertKind, AlertStatus, OutboxItem

# Not delivered yet: pending, or held back by the flood guard for a summary that lists it.
WAITING = (AlertStatus.PENDING, AlertStatus.HELD)


def held_by_false_alarm(
    article_id: int, alert_ids: Collection[int], pending: Sequence[OutboxItem]
) -> list[int]:
    """Waiting items of the narrative the false alarm stops: its article's alerts on other
    channels (held ones too, or a flood summary would list them), and the replies ("also
    published by") under any of them."""
    parents = set(alert_ids)
    return [
        item.id for item in pending if item.status in WAITING and (
            (item.kind is AlertKind.ALERT and item.article_id == article_id)
            or (item.kind is AlertKind.REPLY and item.parent_id in parents)
        )
    ]


def held_by_mute(pending: Sequence[OutboxItem]) -> list[int]:
    """Every waiting message of a muted narrative, flood summaries and the alerts held for them
    too: it stops interrupting at once, and nothing held surfaces in a summary after the mute."""
    return [item.id for item in pending if item.status in WAITING
            and item.kind in (AlertKind.ALERT, AlertKind.REPLY, AlertKind.SUMMARY)]
