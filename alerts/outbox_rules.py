"""What goes into the alert outbox: the flood limit, its summaries, and replies for copies.

Pure rules: they read facts through `OutboxFacts` and return complete `OutboxEntry` writes.
Storage runs them inside the transaction that stores the match (or the copy) and persists
what they return, so an alert is never lost nor written twice. Keys make every entry unique:
one alert per (story, narrative, channel), one reply per (alert, outlet), one summary per
(narrative, channel, flood window).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from monitor.types import (
    AlertIntent,
    AlertKind,
    AlertStatus,
    OutboxEntry,
    OutboxFacts,
    OutboxRules,
    StoredCopy,
)

SYNDICATION_WINDOW = timedelta(hours=48)  # a copy of a story older than this is a new alert
# What counts towards the flood limit: every alert that went, or will go, out on its own.
COUNTED = frozenset({AlertStatus.PENDING, AlertStatus.SENDING, AlertStatus.SENT, AlertStatus.FAILED})


@dataclass(frozen=True)
class FloodRule:
    """At most `limit` alerts per narrative and channel in `window`; the rest go in a summary."""

    limit: int = 10
    window: timedelta = timedelta(hours=1)


DEFAULT_FLOOD = FloodRule()


def flood_rules(flood: FloodRule) -> OutboxRules:
    """`outbox_entries` with this flood rule: what storage runs for a batch of new matches."""
    return partial(outbox_entries, flood=flood)


def outbox_entries(
    intents: Sequence[AlertIntent], facts: OutboxFacts, now: datetime, flood: FloodRule = DEFAULT_FLOOD
) -> list[OutboxEntry]:
    """The writes for the intents of new matches; intents whose key is stored already are dropped.

    So are intents analysts asked to hold back: every one of a muted narrative, and an alert
    on an article labelled a false alarm for that narrative.
    """
    planned: dict[str, OutboxEntry] = {}
    for intent in intents:
        if intent.key in planned or facts.exists(intent.key) or _held_back(intent, facts, now):
            continue
        if intent.kind is not AlertKind.ALERT:
            planned[intent.key] = _entry(intent, AlertStatus.PENDING, now)
            continue
        status = AlertStatus.PENDING
        if _over_flood(intent, facts, now, flood, planned.values()):
            status = AlertStatus.HELD
            summary = _summary(intent, now, flood)
            planned.setdefault(summary.key, summary)  # storage skips it if the window has one
        planned[intent.key] = _entry(intent, status, now)
        for reply in _known_copies(intent, facts):
            planned.setdefault(reply.key, _entry(reply, AlertStatus.PENDING, now))
    return list(planned.values())


def copy_entries(copy: StoredCopy, facts: OutboxFacts, now: datetime) -> list[OutboxEntry]:
    """Another outlet carried an alerted story: a threaded reply under each of its recent alerts."""
    if facts.feed_of(copy.original_id) == copy.feed_id:
        return []  # the same outlet repeating itself (a changed guid) is no news
    intents = [
        AlertIntent(AlertKind.REPLY, alert.channel, copy.article_id, alert.narrative_id or "",
                    parent_key=alert.key, feed_id=copy.feed_id)
        for alert in facts.alerts_of(copy.original_id, now - SYNDICATION_WINDOW)
        # A copy of a false alarm is one too: no "also published by" under it.
        if not facts.false_alarmed(copy.original_id, alert.narrative_id or "")
    ]
    return outbox_entries(intents, facts, now)


def _held_back(intent: AlertIntent, facts: OutboxFacts, now: datetime) -> bool:
    """Analysts' feedback keeps this intent out of Slack (the match is still stored and digested)."""
    if facts.muted(intent.narrative_id, now):
        return True
    return intent.kind is AlertKind.ALERT and facts.false_alarmed(intent.article_id, intent.narrative_id)


def story_entries(story_ids: Sequence[int], channel: str, now: datetime) -> list[OutboxEntry]:
    """One post per story that became emerging; its key makes it once per story and channel, ever."""
    return [OutboxEntry(f"story:{story_id}:{channel}", AlertKind.STORY, channel, AlertStatus.PENDING,
                        due=now, created_at=now, story_id=story_id) for story_id in story_ids]


def _known_copies(alert: AlertIntent, facts: OutboxFacts) -> list[AlertIntent]:
    """Copies stored before the story was matched, from other outlets: replies straight away."""
    own = facts.feed_of(alert.article_id)
    return [
        AlertIntent(AlertKind.REPLY, alert.channel, copy.article_id, alert.narrative_id,
                    parent_key=alert.key, feed_id=copy.feed_id)
        for copy in facts.copies_of(alert.article_id) if copy.feed_id != own
    ]


def _over_flood(
    intent: AlertIntent, facts: OutboxFacts, now: datetime, flood: FloodRule, planned: Iterable[OutboxEntry]
) -> bool:
    """Whether the narrative's channel had its fill of alerts in the window (this batch included)."""
    stored = facts.alert_count(intent.narrative_id, intent.channel, now - flood.window, COUNTED)
    batch = sum(
        1 for e in planned
        if e.kind is AlertKind.ALERT and e.narrative_id == intent.narrative_id
        and e.channel == intent.channel and e.status in COUNTED
    )
    return stored + batch >= flood.limit


def _summary(intent: AlertIntent, now: datetime, flood: FloodRule) -> OutboxEntry:
    """One summary per narrative, channel and window, due when the window closes."""
    seconds = flood.window.total_seconds()
    bucket = int(now.timestamp() // seconds)
    closes = datetime.fromtimestamp((bucket + 1) * seconds, tz=now.tzinfo)
    return OutboxEntry(f"summary:{intent.narrative_id}:{intent.channel}:{bucket}", AlertKind.SUMMARY,
                       intent.channel, AlertStatus.PENDING, due=closes, created_at=now,
                       narrative_id=intent.narrative_id)


def _entry(intent: AlertIntent, status: AlertStatus, now: datetime) -> OutboxEntry:
    return OutboxEntry(intent.key, intent.kind, intent.channel, status, due=now, created_at=now,
                       article_id=intent.article_id, narrative_id=intent.narrative_id,
                       parent_key=intent.parent_key, feed_id=intent.feed_id)
