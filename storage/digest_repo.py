"""What the daily digest reads (matches of a period, failing feeds) and whether it was sent."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import sessionmaker

from monitor.types import (
    Clock,
    DigestStatus,
    FailingFeed,
    Label,
    LabelTally,
    MatchedArticle,
    Story,
    Tier,
    utc_now,
)
from storage.stories_repo import StoryStore
from storage.tables import ArticleRow, DigestRow, FeedbackLabelRow, FeedRow, MatchRow, NarrativeRow


class DigestStore:
    """Reads for the digest (alerts.digest_build.DigestSource), and which periods were sent."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._stories = StoryStore(engine, clock)

    def matched(self, start: datetime, end: datetime) -> list[MatchedArticle]:
        """Every match of an article published in [start, end), with its article, feed and narrative."""
        query = (
            select(MatchRow.narrative_id, NarrativeRow.title, NarrativeRow.url, MatchRow.article_id,
                   ArticleRow.feed_id, FeedRow.name, ArticleRow.title, ArticleRow.url,
                   ArticleRow.published_at, MatchRow.score, MatchRow.tier, MatchRow.evidence)
            .join(ArticleRow, ArticleRow.id == MatchRow.article_id)
            .join(NarrativeRow, NarrativeRow.id == MatchRow.narrative_id)
            .outerjoin(FeedRow, FeedRow.id == ArticleRow.feed_id)
            .where(ArticleRow.published_at >= start, ArticleRow.published_at < end)
        )
        with self._sessions() as session:
            return [
                MatchedArticle(narrative_id=nid, narrative_title=n_title, narrative_url=n_url,
                               article_id=aid, feed_id=feed_id, outlet=outlet or feed_id, title=title,
                               url=url, published=published, score=score, tier=Tier(tier), evidence=evidence)
                for nid, n_title, n_url, aid, feed_id, outlet, title, url, published, score, tier, evidence
                in session.execute(query)
            ]

    def matched_before(self, moment: datetime, narrative_ids: Collection[str]) -> set[str]:
        """Those of the narratives matched by an article published before `moment`."""
        if not narrative_ids:
            return set()
        query = (
            select(MatchRow.narrative_id).distinct()
            .join(ArticleRow, ArticleRow.id == MatchRow.article_id)
            .where(MatchRow.narrative_id.in_(narrative_ids), ArticleRow.published_at < moment)
        )
        with self._sessions() as session:
            return set(session.scalars(query))

    def label_tallies(self, start: datetime, end: datetime) -> list[LabelTally]:
        """Current labels given in [start, end), counted per narrative."""
        query = (
            select(FeedbackLabelRow.narrative_id, FeedbackLabelRow.label, func.count())
            .where(FeedbackLabelRow.ended_at.is_(None), FeedbackLabelRow.at >= start,
                   FeedbackLabelRow.at < end)
            .group_by(FeedbackLabelRow.narrative_id, FeedbackLabelRow.label)
        )
        counts: dict[str, dict[str, int]] = {}
        with self._sessions() as session:
            for narrative_id, label, count in session.execute(query):
                counts.setdefault(narrative_id, {})[label] = int(count)
        return [LabelTally(nid, c.get(Label.CONFIRMED.value, 0), c.get(Label.FALSE_ALARM.value, 0))
                for nid, c in sorted(counts.items())]

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

    def emerged_stories(self, start: datetime, end: datetime) -> list[Story]:
        """Stories that became emerging before `end` and were told on or after `start`."""
        return self._stories.emerged(start, end)

    def periods(self) -> dict[str, DigestStatus]:
        """How the last attempt of every period went (one short row a day)."""
        with self._sessions() as session:
            rows = session.execute(select(DigestRow.period, DigestRow.status))
            return {period: DigestStatus(status) for period, status in rows}

    def status(self, period_key: str) -> DigestStatus | None:
        """How the period's last attempt went, or None if it was never attempted."""
        with self._sessions() as session:
            row = session.get(DigestRow, period_key)
            return DigestStatus(row.status) if row else None

    def record(self, period_key: str, status: DigestStatus, *, destination: str | None = None,
               error: str | None = None) -> None:
        """Record an attempt and how it went."""
        now = self._clock()
        status = DigestStatus(status)
        with self._sessions.begin() as session:
            row = session.get(DigestRow, period_key)
            if row is None:
                row = DigestRow(period=period_key, attempts=0, updated_at=now)
                session.add(row)
            row.status, row.attempts, row.updated_at = status.value, row.attempts + 1, now
            row.last_error, row.destination = error, destination
            if status is DigestStatus.SENT:
                row.sent_at = now
