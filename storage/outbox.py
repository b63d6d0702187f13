"""The alert outbox: intents written with their match, delivered afterwards, delivery recorded.

An alert is written in the transaction that stores its match, so a crash can lose neither;
the deliverer sends what is pending and records Slack's message ts, so a restart re-sends
nothing already acknowledged. Keys make every intent unique: one alert per (story,
narrative, channel), one reply per (alert, outlet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.types import AlertContent, AlertIntent, AlertKind, AlertStatus, OutboxItem
from storage.clock import Clock, utc_now
from storage.tables import (
    AlertRow,
    ArticlePassageRow,
    ArticleRow,
    ArticleSourceRow,
    FeedRow,
    MatchRow,
    NarrativeRow,
)

SYNDICATION_WINDOW = timedelta(hours=48)  # a copy of a story older than this is a new alert
_COUNTED = (AlertStatus.PENDING.value, AlertStatus.SENDING.value, AlertStatus.SENT.value,
            AlertStatus.FAILED.value)
_DELIVERABLE = (AlertStatus.PENDING.value, AlertStatus.SENDING.value)
# A deliverer that dies holding a claim delays that message by this much, no more.
CLAIM_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class FloodRule:
    """At most `limit` alerts per narrative and channel in `window`; the rest go in a summary."""

    limit: int = 10
    window: timedelta = timedelta(hours=1)


DEFAULT_FLOOD = FloodRule()


def enqueue(session: Session, intents: Sequence[AlertIntent], now: datetime, flood: FloodRule) -> int:
    """Write intents inside the caller's transaction; repeats of a key are ignored. Returns new rows."""
    added = 0
    for intent in intents:
        if session.scalar(select(AlertRow.id).where(AlertRow.key == intent.key)) is not None:
            continue
        parent = _parent(session, intent)
        if intent.kind is AlertKind.REPLY and parent is None:
            continue
        status = AlertStatus.PENDING
        if intent.kind is AlertKind.ALERT and _over_flood(session, intent, now, flood):
            status = AlertStatus.HELD
            _ensure_summary(session, intent, now, flood)
        row = _row(intent.key, intent.kind, intent.channel, status, now, article_id=intent.article_id,
                   narrative_id=intent.narrative_id, parent_id=parent, feed_id=intent.feed_id)
        session.add(row)
        session.flush()
        added += 1
        if intent.kind is AlertKind.ALERT:
            added += _known_copies(session, intent, row.id, now)
    return added


def _known_copies(session: Session, alert: AlertIntent, alert_id: int, now: datetime) -> int:
    """Copies stored before the story was matched: replies under the new alert straight away."""
    article = session.get_one(ArticleRow, alert.article_id)
    other_sources = session.scalars(
        select(ArticleSourceRow.feed_id).where(
            ArticleSourceRow.article_id == article.id, ArticleSourceRow.feed_id != article.feed_id
        )
    ).all()
    same_text = session.execute(
        select(ArticleRow.id, ArticleRow.feed_id).where(
            ArticleRow.duplicate_of == article.id, ArticleRow.feed_id != article.feed_id
        )
    ).all()
    copies = [(article.id, feed_id) for feed_id in other_sources] + [(i, f) for i, f in same_text]
    for article_id, feed_id in copies:
        reply = AlertIntent(AlertKind.REPLY, alert.channel, article_id, alert.narrative_id,
                            parent_key=alert.key, feed_id=feed_id)
        session.add(_row(reply.key, AlertKind.REPLY, alert.channel, AlertStatus.PENDING, now,
                         article_id=article_id, narrative_id=alert.narrative_id, parent_id=alert_id,
                         feed_id=feed_id))
    session.flush()
    return len(copies)


def enqueue_syndication(
    session: Session, original_id: int, article_id: int, feed_id: str, now: datetime
) -> None:
    """Another outlet carried an alerted story: a threaded reply under each of its recent alerts."""
    if session.scalar(select(ArticleRow.feed_id).where(ArticleRow.id == original_id)) == feed_id:
        return  # the same outlet repeating itself (a changed guid) is no news
    alerts = session.execute(
        select(AlertRow.key, AlertRow.channel, AlertRow.narrative_id).where(
            AlertRow.article_id == original_id, AlertRow.kind == AlertKind.ALERT.value,
            AlertRow.created_at >= now - SYNDICATION_WINDOW,
        )
    ).all()
    intents = [
        AlertIntent(AlertKind.REPLY, channel, article_id, narrative_id or "", parent_key=key, feed_id=feed_id)
        for key, channel, narrative_id in alerts
    ]
    enqueue(session, intents, now, DEFAULT_FLOOD)


def _parent(session: Session, intent: AlertIntent) -> int | None:
    if intent.parent_key is None:
        return None
    return session.scalar(select(AlertRow.id).where(AlertRow.key == intent.parent_key))


def _over_flood(session: Session, intent: AlertIntent, now: datetime, flood: FloodRule) -> bool:
    count = session.scalar(
        select(func.count()).select_from(AlertRow).where(
            AlertRow.kind == AlertKind.ALERT.value, AlertRow.narrative_id == intent.narrative_id,
            AlertRow.channel == intent.channel, AlertRow.status.in_(_COUNTED),
            AlertRow.created_at >= now - flood.window,
        )
    )
    return (count or 0) >= flood.limit


def _ensure_summary(session: Session, intent: AlertIntent, now: datetime, flood: FloodRule) -> None:
    """One summary per narrative, channel and window, sent when the window closes."""
    seconds = flood.window.total_seconds()
    bucket = int(now.timestamp() // seconds)
    key = f"summary:{intent.narrative_id}:{intent.channel}:{bucket}"
    if session.scalar(select(AlertRow.id).where(AlertRow.key == key)) is None:
        closes = datetime.fromtimestamp((bucket + 1) * seconds, tz=now.tzinfo)
        session.add(_row(key, AlertKind.SUMMARY, intent.channel, AlertStatus.PENDING, closes,
                         narrative_id=intent.narrative_id, created_at=now))


def _row(
    key: str, kind: AlertKind, channel: str, status: AlertStatus, due: datetime, *,
    created_at: datetime | None = None, **fields: object,
) -> AlertRow:
    return AlertRow(key=key, kind=kind.value, channel=channel, status=status.value, attempts=0,
                    next_attempt_at=due, created_at=created_at or due, **fields)


class Outbox:
    """Reading and settling the outbox for the deliverer."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    def add(self, intents: Sequence[AlertIntent], flood: FloodRule = DEFAULT_FLOOD) -> int:
        """Write intents in a transaction of their own (test messages, backfills)."""
        with self._sessions.begin() as session:
            return enqueue(session, intents, self._clock(), flood)

    def add_test(self, channel: str) -> int:
        """A test message for `monitor alerts test`; its id."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = _row(f"test:{channel}:{now.timestamp()}", AlertKind.TEST, channel, AlertStatus.PENDING, now)
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

    def replies(self, parent_id: int) -> list[OutboxItem]:
        with self._sessions() as session:
            query = select(AlertRow).where(AlertRow.parent_id == parent_id).order_by(AlertRow.id)
            return [_item(row) for row in session.scalars(query)]

    def held(self, summary: OutboxItem) -> list[OutboxItem]:
        """The alerts a summary stands for: held for its narrative and channel, not yet summarised."""
        query = select(AlertRow).where(
            AlertRow.status == AlertStatus.HELD.value, AlertRow.narrative_id == summary.narrative_id,
            AlertRow.channel == summary.channel, AlertRow.created_at <= self._clock(),
        ).order_by(AlertRow.id)
        with self._sessions() as session:
            return [_item(row) for row in session.scalars(query)]

    def recent_alert_heads(
        self, narrative_id: str, model_id: str, window: timedelta = SYNDICATION_WINDOW
    ) -> list[tuple[str, str, int, bytes]]:
        """(key, channel, article id, first-passage vector) of this narrative's recent alerts."""
        query = (
            select(AlertRow.key, AlertRow.channel, AlertRow.article_id, ArticlePassageRow.vector)
            .join(ArticlePassageRow, ArticlePassageRow.article_id == AlertRow.article_id)
            .where(AlertRow.kind == AlertKind.ALERT.value, AlertRow.narrative_id == narrative_id,
                   AlertRow.created_at >= self._clock() - window, ArticlePassageRow.model_id == model_id,
                   ArticlePassageRow.idx == 0)
        )
        with self.engine.connect() as connection:
            return [(k, c, a or 0, v) for k, c, a, v in connection.execute(query)]

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

    def settle_many(self, item_ids: Sequence[int], status: AlertStatus) -> None:
        with self._sessions.begin() as session:
            session.execute(update(AlertRow).where(AlertRow.id.in_(item_ids)).values(status=status.value))

    def origins(self, article_ids: Sequence[int]) -> dict[int, tuple[str, datetime]]:
        """The feed each article was first stored from, and when it was published."""
        query = select(ArticleRow.id, ArticleRow.feed_id, ArticleRow.published_at).where(
            ArticleRow.id.in_(article_ids)
        )
        with self._sessions() as session:
            return {row.id: (row.feed_id, row.published_at) for row in session.execute(query)}

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
        created_at=row.created_at, ts=row.ts,
    )
