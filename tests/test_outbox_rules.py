"""The outbox rules as pure functions: facts in, complete writes out (no database needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from alerts.feedback_rules import held_by_false_alarm, held_by_mute
from alerts.outbox_rules import COUNTED, SYNDICATION_WINDOW, FloodRule, copy_entries, outbox_entries
from monitor.types import AlertIntent, AlertKind, AlertRef, AlertStatus, ArticleCopy, OutboxItem, StoredCopy

NOW = datetime(2026, 11, 24, 10, 20, tzinfo=UTC)


@dataclass
class Facts:
    """An in-memory outbox that answers as storage's SessionFacts does."""

    keys: set[str] = field(default_factory=set)
    sent: int = 0  # alerts counted in the flood window
    feeds: dict[int, str] = field(default_factory=dict)
    copies: dict[int, list[ArticleCopy]] = field(default_factory=dict)
    alerts: dict[int, list[AlertRef]] = field(default_factory=dict)
    asked_since: list[datetime] = field(default_factory=list)
    false_alarms: set[tuple[int, str]] = field(default_factory=set)
    mutes: dict[str, datetime] = field(default_factory=dict)

    def exists(self, key: str) -> bool:
        return key in self.keys

    def alert_count(self, narrative_id: str, channel: str, since: datetime,
                    statuses: frozenset[AlertStatus]) -> int:
        assert statuses == COUNTED and since == NOW - timedelta(hours=1)
        return self.sent

    def feed_of(self, article_id: int) -> str | None:
        return self.feeds.get(article_id)

    def copies_of(self, article_id: int) -> list[ArticleCopy]:
        return self.copies.get(article_id, [])

    def alerts_of(self, article_id: int, since: datetime) -> list[AlertRef]:
        self.asked_since.append(since)
        return self.alerts.get(article_id, [])

    def false_alarmed(self, article_id: int, narrative_id: str) -> bool:
        return (article_id, narrative_id) in self.false_alarms

    def muted(self, narrative_id: str, now: datetime) -> bool:
        return narrative_id in self.mutes and self.mutes[narrative_id] > now


def alert(article_id: int, channel: str = "C1") -> AlertIntent:
    return AlertIntent(AlertKind.ALERT, channel, article_id, "biolabs")


def test_alerts_over_the_flood_limit_are_held_for_one_summary() -> None:
    entries = outbox_entries([alert(1), alert(2), alert(3), alert(4)], Facts(), NOW, FloodRule(limit=2))
    assert [(e.kind, e.status) for e in entries] == [
        (AlertKind.ALERT, AlertStatus.PENDING), (AlertKind.ALERT, AlertStatus.PENDING),
        (AlertKind.SUMMARY, AlertStatus.PENDING), (AlertKind.ALERT, AlertStatus.HELD),
        (AlertKind.ALERT, AlertStatus.HELD),
    ]
    summary = entries[2]
    assert summary.due == datetime(2026, 11, 24, 11, tzinfo=UTC) and summary.created_at == NOW


def test_stored_alerts_count_and_other_channels_do_not() -> None:
    entries = outbox_entries([alert(1), alert(2, "C2")], Facts(sent=2), NOW, FloodRule(limit=2))
    assert [(e.channel, e.status) for e in entries if e.kind is AlertKind.ALERT] == [
        ("C1", AlertStatus.HELD), ("C2", AlertStatus.HELD)]  # the stand-in counts 2 for any channel


def test_a_stored_key_is_written_once() -> None:
    assert outbox_entries([alert(1)], Facts(keys={alert(1).key}), NOW) == []
    assert len(outbox_entries([alert(1), alert(1)], Facts(), NOW)) == 1


def test_copies_from_other_outlets_become_replies_under_a_new_alert() -> None:
    facts = Facts(feeds={1: "wire"},
                  copies={1: [ArticleCopy(1, "wire"), ArticleCopy(1, "daily"), ArticleCopy(7, "daily")]})
    head, *replies = outbox_entries([alert(1)], facts, NOW)
    assert [(r.kind, r.article_id, r.feed_id, r.parent_key) for r in replies] == [
        (AlertKind.REPLY, 1, "daily", head.key), (AlertKind.REPLY, 7, "daily", head.key)]


def test_a_copy_replies_to_each_recent_alert_unless_the_outlet_repeats_itself() -> None:
    facts = Facts(feeds={1: "wire"}, alerts={1: [AlertRef("alert:1:biolabs:C1", "C1", "biolabs")]})
    assert copy_entries(StoredCopy(1, 5, "wire"), facts, NOW) == []
    (reply,) = copy_entries(StoredCopy(1, 5, "daily"), facts, NOW)
    assert (reply.kind, reply.channel, reply.parent_key, reply.feed_id) == (
        AlertKind.REPLY, "C1", "alert:1:biolabs:C1", "daily")
    assert facts.asked_since == [NOW - SYNDICATION_WINDOW]


def test_a_false_alarm_gets_no_alert_and_its_copies_no_reply() -> None:
    facts = Facts(feeds={1: "wire"}, copies={1: [ArticleCopy(7, "daily")]}, false_alarms={(1, "biolabs")},
                  alerts={1: [AlertRef("alert:1:biolabs:C1", "C1", "biolabs")]})
    assert outbox_entries([alert(1)], facts, NOW) == []
    assert copy_entries(StoredCopy(1, 5, "daily"), facts, NOW) == []
    assert [e.article_id for e in outbox_entries([alert(2)], facts, NOW)] == [2]  # other articles alert


def test_a_muted_narrative_gets_neither_alerts_nor_replies_until_the_mute_ends() -> None:
    facts = Facts(feeds={1: "wire"}, mutes={"biolabs": NOW + timedelta(hours=1)},
                  alerts={1: [AlertRef("alert:1:biolabs:C1", "C1", "biolabs")]})
    assert outbox_entries([alert(2)], facts, NOW) == []
    assert copy_entries(StoredCopy(1, 5, "daily"), facts, NOW) == []
    ended = Facts(mutes={"biolabs": NOW})  # a mute is over at its `until`
    assert [e.article_id for e in outbox_entries([alert(2)], ended, NOW)] == [2]


def queued(item_id: int, kind: AlertKind, article_id: int | None, parent_id: int | None = None) -> OutboxItem:
    return OutboxItem(item_id, f"k{item_id}", kind, "C1", AlertStatus.PENDING, 0, article_id, "biolabs",
                      parent_id, None, NOW)


def test_what_a_label_or_a_mute_stops_among_queued_messages() -> None:
    pending = [queued(2, AlertKind.ALERT, 1), queued(3, AlertKind.REPLY, 7, parent_id=1),
               queued(4, AlertKind.ALERT, 8), queued(5, AlertKind.REPLY, 9, parent_id=4),
               queued(6, AlertKind.SUMMARY, None)]
    # Alert 1 (article 1, channel C0) was a false alarm; alert 2 is its copy on another channel.
    assert held_by_false_alarm(1, [1, 2], pending) == [2, 3]
    assert held_by_mute(pending) == [2, 3, 4, 5, 6]
