"""What the daily digest reads (matches of a period, failing feeds) and whether it was sent."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from monitor.types import Digest, DigestArticle, DigestNarrative, FailingFeed
from storage.clock import Clock, utc_now
from storage.tables import ArticleRow, DigestRow, FeedRow, MatchRow, NarrativeRow

CHART_DAYS = 7


@dataclass(frozen=True)
class _Seen:
    narrative_id: str
    article_id: int
    feed_id: str
    published: datetime
    score: float


@dataclass(frozen=True)
class Period:
    """A digest's day: its key, start and end (aware), and the chart's days before it."""

    key: str  # "YYYY-MM-DD"
    start: datetime
    end: datetime
    timezone: str
    days: tuple[tuple[str, datetime, datetime], ...]  # CHART_DAYS days ending with this one


class DigestStore:
    """Reads for the digest, and the record of which periods were sent."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    def build(self, period: Period, top: int = 5) -> Digest:
        """The digest of one period, from the stored matches."""
        week_start = period.start - timedelta(days=CHART_DAYS)
        seen = self._seen(min(week_start, period.days[0][1]), period.end)
        in_period = [s for s in seen if period.start <= s.published < period.end]
        by_narrative: dict[str, list[_Seen]] = defaultdict(list)
        for s in in_period:
            by_narrative[s.narrative_id].append(s)
        earlier = {s.narrative_id for s in seen if s.published < period.start}
        earlier |= self._matched_before(week_start, set(by_narrative) - earlier)
        narratives = [
            self._narrative(nid, items, seen, period, nid not in earlier, top)
            for nid, items in by_narrative.items()
        ]
        narratives.sort(key=lambda n: (-n.articles, -n.alerts, n.title))
        return Digest(
            start=period.start, end=period.end, timezone=period.timezone, narratives=tuple(narratives),
            failing_feeds=self.failing_feeds(), days=tuple(day for day, _s, _e in period.days),
            daily=self._daily(seen, period),
        )

    def _seen(self, start: datetime, end: datetime) -> list[_Seen]:
        query = (
            select(MatchRow.narrative_id, MatchRow.article_id, ArticleRow.feed_id,
                   ArticleRow.published_at, MatchRow.score)
            .join(ArticleRow, ArticleRow.id == MatchRow.article_id)
            .where(ArticleRow.published_at >= start, ArticleRow.published_at < end)
        )
        with self._sessions() as session:
            return [_Seen(*row) for row in session.execute(query)]

    def _matched_before(self, moment: datetime, narrative_ids: set[str]) -> set[str]:
        if not narrative_ids:
            return set()
        query = (
            select(MatchRow.narrative_id).distinct()
            .join(ArticleRow, ArticleRow.id == MatchRow.article_id)
            .where(MatchRow.narrative_id.in_(narrative_ids), ArticleRow.published_at < moment)
        )
        with self._sessions() as session:
            return set(session.scalars(query))

    def _narrative(
        self, narrative_id: str, items: list[_Seen], seen: list[_Seen], period: Period,
        first_seen: bool, top: int,
    ) -> DigestNarrative:
        day_before = period.start - timedelta(days=1)
        week_start = period.start - timedelta(days=CHART_DAYS)
        before = {s.article_id for s in seen if s.narrative_id == narrative_id
                  and day_before <= s.published < period.start}
        week = {s.article_id for s in seen if s.narrative_id == narrative_id
                and week_start <= s.published < period.start}
        best = sorted(items, key=lambda s: -s.score)[:top]
        title, url, articles = self._details(narrative_id, [s.article_id for s in best])
        return DigestNarrative(
            narrative_id=narrative_id, title=title, url=url,
            articles=len({s.article_id for s in items}), outlets=len({s.feed_id for s in items}),
            alerts=sum(1 for a in self._tiers(narrative_id, items) if a == "alert"),
            previous_day=len(before), week_average=round(len(week) / CHART_DAYS, 2),
            first_seen=first_seen, top=tuple(articles),
        )

    def _tiers(self, narrative_id: str, items: Sequence[_Seen]) -> list[str]:
        query = select(MatchRow.tier).where(
            MatchRow.narrative_id == narrative_id, MatchRow.article_id.in_([s.article_id for s in items])
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def _details(
        self, narrative_id: str, article_ids: list[int]
    ) -> tuple[str, str | None, list[DigestArticle]]:
        query = (
            select(MatchRow, ArticleRow, FeedRow)
            .join(ArticleRow, ArticleRow.id == MatchRow.article_id)
            .join(FeedRow, FeedRow.id == ArticleRow.feed_id)
            .where(MatchRow.narrative_id == narrative_id, MatchRow.article_id.in_(article_ids))
            .order_by(MatchRow.score.desc())
        )
        with self._sessions() as session:
            narrative = session.get_one(NarrativeRow, narrative_id)
            articles = [
                DigestArticle(title=a.title, url=a.url, outlet=f.name or f.id, published=a.published_at,
                              score=m.score, tier=m.tier, evidence=m.evidence)
                for m, a, f in session.execute(query)
            ]
        return narrative.title, narrative.url, articles

    def _daily(self, seen: list[_Seen], period: Period) -> dict[str, tuple[int, ...]]:
        with self._sessions() as session:
            titles = {i: t for i, t in session.execute(select(NarrativeRow.id, NarrativeRow.title))}
        per_day: dict[str, Counter[int]] = defaultdict(Counter)
        for index, (_day, start, end) in enumerate(period.days):
            for s in {(s.narrative_id, s.article_id): s for s in seen if start <= s.published < end}.values():
                per_day[s.narrative_id][index] += 1
        return {titles.get(nid, nid): tuple(counts[i] for i in range(len(period.days)))
                for nid, counts in per_day.items()}

    def failing_feeds(self) -> tuple[FailingFeed, ...]:
        """Feeds whose last poll failed, most errors first."""
        query = select(FeedRow).where(FeedRow.consecutive_errors > 0).order_by(
            FeedRow.consecutive_errors.desc(), FeedRow.id
        )
        with self._sessions() as session:
            return tuple(
                FailingFeed(feed_id=f.id, name=f.name or f.id, url=f.url, last_error=f.last_error or "",
                            consecutive_errors=f.consecutive_errors, last_success=f.last_success_at)
                for f in session.scalars(query)
            )

    def status(self, period_key: str) -> str | None:
        """"sent", "skipped", "failed", or None if never attempted."""
        with self._sessions() as session:
            row = session.get(DigestRow, period_key)
            return row.status if row else None

    def record(self, period_key: str, status: str, *, destination: str | None = None,
               error: str | None = None) -> None:
        """Record an attempt; only "sent" and "skipped" end the period's retries."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get(DigestRow, period_key)
            if row is None:
                row = DigestRow(period=period_key, attempts=0, updated_at=now)
                session.add(row)
            row.status, row.attempts, row.updated_at = status, row.attempts + 1, now
            row.last_error, row.destination = error, destination
            if status == "sent":
                row.sent_at = now
