"""The alert outbox: intents written with their match, delivered afterwards, delivery recorded.

An alert is written in the transaction that stores its match (storage/outbox_write.py), so
a crash can lose neither; the deliverer sends what is pending and records Slack's message
ts, so a restart re-sends nothing already acknowledged. What is written is decided in
alerts/outbox_rules.py; this module reads and settles.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import aliased, sessionmaker

from monitor.types import (
    AlertContent,
    AlertHead,
    AlertIntent,
    AlertKind,
    AlertStatus,
    ArticleOrigin,
    Clock,
    Label,
    OutboxEntry,
    OutboxItem,
    OutboxRules,
    Story,
    utc_now,
)
from storage.outbox_write import SessionFacts, new_row, write_entries
from storage.stories_repo import StoryStore
from storage.tables import (
    AlertRow,
    ArticlePassageRow,
    ArticleRow,
    FeedbackLabelRow,
    FeedRow,
    MatchRow,
    NarrativeRow,
)
from storage.vectors import decode

_DELIVERABLE = (AlertStatus.PENDING.value, AlertStatus.SENDING.value)
_WAITING = (AlertStatus.PENDING.value, AlertStatus.HELD.value)  # not delivered, not being sent
# A deliverer that dies holding a claim delays that message by this much, no more.
CLAIM_LEASE = timedelta(seconds=60)


class Outbox:
    """Reading and settling the outbox for the deliverer."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    def add(self, intents: Sequence[AlertIntent], rules: OutboxRules) -> int:
        """Write what `rules` make of intents, in a transaction of their own (backfills); rows added."""
        with self._sessions.begin() as session:
            now = self._clock()
            return write_entries(session, rules(intents, SessionFacts(session), now))

    def add_test(self, channel: str) -> int:
        """A test message for `monitor alerts test`; its id."""
        now = self._clock()
        entry = OutboxEntry(f"test:{channel}:{now.timestamp()}", AlertKind.TEST, channel,
                            AlertStatus.PENDING, due=now, created_at=now)
        with self._sessions.begin() as session:
            row = new_row(entry)
            session.add(row)
            session.flush()
            return row.id

    def due(self, limit: int = 100) -> list[OutboxItem]:
        """Pending items whose time has come (and claims whose lease ran out), oldest first."""
        query = (
            select(AlertRow)
            .where(AlertRow.status.in_(_DELIVERABLE), AlertRow.next_attempt_at <= self._clock())
            .order_by(AlertRow.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [_item(row) for row in session.scalars(query)]

    def claim(self, item_id: int, lease: timedelta = CLAIM_LEASE) -> bool:
        """Take an item for delivery; False when another deliverer (process) has it."""
        now = self._clock()
        with self.engine.begin() as connection:
            claimed = connection.execute(
                update(AlertRow)
                .where(AlertRow.id == item_id, AlertRow.status.in_(_DELIVERABLE),
                       AlertRow.next_attempt_at <= now)
                .values(status=AlertStatus.SENDING.value, next_attempt_at=now + lease)
            )
            return claimed.rowcount > 0

    def next_due(self) -> datetime | None:
        """When the earliest pending item falls due (None when nothing is pending)."""
        query = select(func.min(AlertRow.next_attempt_at)).where(AlertRow.status.in_(_DELIVERABLE))
        with self._sessions() as session:
            return session.scalar(query)

    def item(self, item_id: int) -> OutboxItem | None:
        with self._sessions() as session:
            row = session.get(AlertRow, item_id)
            return _item(row) if row else None

    def items(self, kind: AlertKind | None = None) -> list[OutboxItem]:
        """Every item (of one kind), oldest first."""
        query = select(AlertRow).order_by(AlertRow.id)
        if kind is not None:
            query = query.where(AlertRow.kind == kind.value)
        with self._sessions() as session:
            return [_item(row) for row in session.scalars(query)]

    def content(self, article_id: int, narrative_id: str) -> AlertContent:
        """What an alert about this match shows."""
        with self._sessions() as session:
            row = session.execute(
                select(MatchRow, ArticleRow, NarrativeRow, FeedRow)
                .join(ArticleRow, ArticleRow.id == MatchRow.article_id)
                .join(NarrativeRow, NarrativeRow.id == MatchRow.narrative_id)
                .join(FeedRow, FeedRow.id == ArticleRow.feed_id)
                .where(MatchRow.article_id == article_id, MatchRow.narrative_id == narrative_id)
            ).one()
        match, article, narrative, feed = row
        return AlertContent(
            narrative_id=narrative.id, narrative_title=narrative.title,
            narrative_summary=narrative.summary, narrative_url=narrative.url,
            article_title=article.title, article_url=article.url, outlet=feed.name or feed.id,
            language=article.language, published=article.published_at, score=match.score,
            tier=match.tier, evidence=match.evidence,
        )

    def outlet(self, feed_id: str | None, article_id: int | None) -> tuple[str, str | None]:
        """The outlet name and article URL a reply mentions."""
        with self._sessions() as session:
            feed = session.get(FeedRow, feed_id) if feed_id else None
            article = session.get(ArticleRow, article_id) if article_id else None
        name = (feed.name or feed.id) if feed else (feed_id or "another outlet")
        return name, article.url if article else None

    def story(self, story_id: int) -> Story | None:
        """What a post about an emerging story shows."""
        return StoryStore(self.engine, self._clock).story(story_id)

    def replies(self, parent_id: int) -> list[OutboxItem]:
        with self._sessions() as session:
            query = select(AlertRow).where(AlertRow.parent_id == parent_id).order_by(AlertRow.id)
            return [_item(row) for row in session.scalars(query)]

    def siblings(self, item: OutboxItem) -> list[OutboxItem]:
        """Other due alerts about the same article on the same channel: one message carries them all."""
        query = select(AlertRow).where(
            AlertRow.kind == AlertKind.ALERT.value, AlertRow.article_id == item.article_id,
            AlertRow.channel == item.channel, AlertRow.id != item.id,
            AlertRow.status == AlertStatus.PENDING.value, AlertRow.next_attempt_at <= self._clock(),
        ).order_by(AlertRow.id)
        with self._sessions() as session:
            return [_item(row) for row in session.scalars(query)]

    def message_alerts(self, alert_id: int) -> list[OutboxItem]:
        """The alerts posted in the same Slack message as `alert_id` (itself included), oldest first."""
        with self._sessions() as session:
            row = session.get(AlertRow, alert_id)
            if row is None or row.kind != AlertKind.ALERT.value:
                return []
            if row.status != AlertStatus.SENT.value:
                return [_item(row)]
            query = select(AlertRow).where(
                AlertRow.kind == AlertKind.ALERT.value, AlertRow.article_id == row.article_id,
                AlertRow.channel == row.channel, AlertRow.status == AlertStatus.SENT.value,
                AlertRow.ts == row.ts,
            ).order_by(AlertRow.id)
            return [_item(other) for other in session.scalars(query)]

    def in_thread(self, reply: OutboxItem, ts: str) -> bool:
        """Whether the thread `ts` already holds a reply about the same copy (from a sibling alert)."""
        parent = aliased(AlertRow)
        query = select(AlertRow.id).join(parent, parent.id == AlertRow.parent_id).where(
            AlertRow.kind == AlertKind.REPLY.value, AlertRow.status == AlertStatus.SENT.value,
            AlertRow.article_id == reply.article_id, AlertRow.feed_id == reply.feed_id,
            AlertRow.channel == reply.channel, parent.ts == ts, AlertRow.id != reply.id,
        ).limit(1)
        with self._sessions() as session:
            return session.scalar(query) is not None

    def held(self, summary: OutboxItem) -> list[OutboxItem]:
        """The alerts a summary stands for: held for its narrative and channel, not yet summarised."""
        query = select(AlertRow).where(
            AlertRow.status == AlertStatus.HELD.value, AlertRow.narrative_id == summary.narrative_id,
            AlertRow.channel == summary.channel, AlertRow.created_at <= self._clock(),
        ).order_by(AlertRow.id)
        with self._sessions() as session:
            return [_item(row) for row in session.scalars(query)]

    def recent_alert_heads(self, narrative_id: str, model_id: str, since: datetime) -> list[AlertHead]:
        """The narrative's alerts created at or after `since`, with their article's first passage."""
        query = (
            select(AlertRow.key, AlertRow.channel, AlertRow.article_id, ArticlePassageRow.vector)
            .join(ArticlePassageRow, ArticlePassageRow.article_id == AlertRow.article_id)
            .where(AlertRow.kind == AlertKind.ALERT.value, AlertRow.narrative_id == narrative_id,
                   AlertRow.created_at >= since, ArticlePassageRow.model_id == model_id,
                   ArticlePassageRow.idx == 0)
        )
        with self.engine.connect() as connection:
            return [AlertHead(k, c, a or 0, decode(v))
                    for k, c, a, v in connection.execute(query)]

    def false_alarm_heads(self, narrative_id: str, model_id: str) -> list[AlertHead]:
        """The narrative's alerts labelled false alarms now, with their article's first passage."""
        query = (
            select(AlertRow.key, AlertRow.channel, AlertRow.article_id, ArticlePassageRow.vector)
            .join(FeedbackLabelRow, FeedbackLabelRow.alert_id == AlertRow.id)
            .join(ArticlePassageRow, ArticlePassageRow.article_id == AlertRow.article_id)
            .where(FeedbackLabelRow.narrative_id == narrative_id, FeedbackLabelRow.ended_at.is_(None),
                   FeedbackLabelRow.label == Label.FALSE_ALARM.value, ArticlePassageRow.model_id == model_id,
                   ArticlePassageRow.idx == 0)
        )
        with self.engine.connect() as connection:
            return [AlertHead(k, c, a or 0, decode(v)) for k, c, a, v in connection.execute(query)]

    def pending_of(self, narrative_id: str) -> list[OutboxItem]:
        """The narrative's messages not delivered yet (pending, or held for a flood summary), oldest first."""
        query = select(AlertRow).where(
            AlertRow.narrative_id == narrative_id, AlertRow.status.in_(_WAITING),
        ).order_by(AlertRow.id)
        with self._sessions() as session:
            return [_item(row) for row in session.scalars(query)]

    def alert_ids(self, article_id: int, narrative_id: str) -> list[int]:
        """Every alert (any channel, any status) about the article on the narrative."""
        query = select(AlertRow.id).where(AlertRow.article_id == article_id,
                                          AlertRow.narrative_id == narrative_id,
                                          AlertRow.kind == AlertKind.ALERT.value)
        with self._sessions() as session:
            return list(session.scalars(query.order_by(AlertRow.id)))

    def suppress(self, item_ids: Sequence[int]) -> int:
        """Mark these items suppressed if still waiting (a deliverer's claim wins); how many were."""
        if not item_ids:
            return 0
        with self.engine.begin() as connection:
            return connection.execute(
                update(AlertRow)
                .where(AlertRow.id.in_(item_ids), AlertRow.status.in_(_WAITING))
                .values(status=AlertStatus.SUPPRESSED.value)
            ).rowcount

    def settle(
        self, item_id: int, status: AlertStatus, *, ts: str | None = None, error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record a delivery outcome: sent (with ts), failed, held/merged, or pending again later."""
        values: dict[str, object] = {"status": status.value, "last_error": error,
                                     "attempts": AlertRow.attempts + 1}
        if status is AlertStatus.SENT:
            values.update(ts=ts, sent_at=self._clock())
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        with self._sessions.begin() as session:
            session.execute(update(AlertRow).where(AlertRow.id == item_id).values(**values))

    def settle_many(self, item_ids: Sequence[int], status: AlertStatus, *, ts: str | None = None) -> None:
        """Settle items that went out inside another item's message (with its ts when sent)."""
        values: dict[str, object] = {"status": status.value}
        if status is AlertStatus.SENT:
            values.update(ts=ts, sent_at=self._clock(), attempts=AlertRow.attempts + 1, last_error=None)
        with self._sessions.begin() as session:
            session.execute(update(AlertRow).where(AlertRow.id.in_(item_ids)).values(**values))

    def origins(self, article_ids: Sequence[int]) -> dict[int, ArticleOrigin]:
        """The feed each article was first stored from, and when it was published."""
        query = select(ArticleRow.id, ArticleRow.feed_id, ArticleRow.published_at).where(
            ArticleRow.id.in_(article_ids)
        )
        with self._sessions() as session:
            return {row.id: ArticleOrigin(row.feed_id, row.published_at) for row in session.execute(query)}

    def counts(self) -> dict[str, int]:
        """How many items are in each status."""
        with self._sessions() as session:
            rows = session.execute(select(AlertRow.status, func.count()).group_by(AlertRow.status))
            return {status: count for status, count in rows}


def _item(row: AlertRow) -> OutboxItem:
    return OutboxItem(
        id=row.id, key=row.key, kind=AlertKind(row.kind), channel=row.channel,
        status=AlertStatus(row.status), attempts=row.attempts, article_id=row.article_id,
        narrative_id=row.narrative_id, parent_id=row.parent_id, feed_id=row.feed_id,
        created_at=row.created_at, ts=row.ts, story_id=row.story_id,
    )
