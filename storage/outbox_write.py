"""Writing outbox entries inside the caller's transaction, and the facts the alert rules read there.

The rules (alerts/outbox_rules.py) decide; this module only answers their questions on the
caller's session and persists what they return, in the transaction that stores the match or
the copy, so an intent is never lost nor written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.types import AlertKind, AlertRef, AlertStatus, ArticleCopy, Label, OutboxEntry
from storage.tables import AlertRow, ArticleRow, ArticleSourceRow, FeedbackLabelRow, NarrativeMuteRow


class SessionFacts:
    """`monitor.types.OutboxFacts` read on one session (so they see its uncommitted writes)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def exists(self, key: str) -> bool:
        return self._session.scalar(select(AlertRow.id).where(AlertRow.key == key)) is not None

    def alert_count(self, narrative_id: str, channel: str, since: datetime,
                    statuses: frozenset[AlertStatus]) -> int:
        count = self._session.scalar(
            select(func.count()).select_from(AlertRow).where(
                AlertRow.kind == AlertKind.ALERT.value, AlertRow.narrative_id == narrative_id,
                AlertRow.channel == channel, AlertRow.status.in_([s.value for s in statuses]),
                AlertRow.created_at >= since,
            )
        )
        return count or 0

    def feed_of(self, article_id: int) -> str | None:
        return self._session.scalar(select(ArticleRow.feed_id).where(ArticleRow.id == article_id))

    def copies_of(self, article_id: int) -> list[ArticleCopy]:
        sources = self._session.scalars(
            select(ArticleSourceRow.feed_id).where(ArticleSourceRow.article_id == article_id)
        ).all()
        same_text = self._session.execute(
            select(ArticleRow.id, ArticleRow.feed_id).where(ArticleRow.duplicate_of == article_id)
        ).all()
        return [ArticleCopy(article_id, feed_id) for feed_id in sources] + [
            ArticleCopy(copy_id, feed_id) for copy_id, feed_id in same_text
        ]

    def alerts_of(self, article_id: int, since: datetime) -> list[AlertRef]:
        rows = self._session.execute(
            select(AlertRow.key, AlertRow.channel, AlertRow.narrative_id).where(
                AlertRow.article_id == article_id, AlertRow.kind == AlertKind.ALERT.value,
                AlertRow.created_at >= since,
            )
        )
        return [AlertRef(key, channel, narrative_id) for key, channel, narrative_id in rows]

    def false_alarmed(self, article_id: int, narrative_id: str) -> bool:
        query = select(FeedbackLabelRow.id).where(
            FeedbackLabelRow.article_id == article_id, FeedbackLabelRow.narrative_id == narrative_id,
            FeedbackLabelRow.label == Label.FALSE_ALARM.value, FeedbackLabelRow.ended_at.is_(None),
        )
        return self._session.scalar(query.limit(1)) is not None

    def muted(self, narrative_id: str, now: datetime) -> bool:
        query = select(NarrativeMuteRow.until).where(NarrativeMuteRow.narrative_id == narrative_id)
        until = self._session.scalar(query)
        return until is not None and until > now


def write_entries(session: Session, entries: Sequence[OutboxEntry]) -> int:
    """Persist entries in order; a stored key and a reply without a stored parent are skipped."""
    added = 0
    for entry in entries:
        if session.scalar(select(AlertRow.id).where(AlertRow.key == entry.key)) is not None:
            continue
        parent = None
        if entry.parent_key is not None:
            parent = session.scalar(select(AlertRow.id).where(AlertRow.key == entry.parent_key))
            if parent is None:
                continue
        session.add(new_row(entry, parent))
        session.flush()
        added += 1
    return added


def new_row(entry: OutboxEntry, parent_id: int | None = None) -> AlertRow:
    """The row of a new entry, not yet delivered."""
    return AlertRow(
        key=entry.key, kind=entry.kind.value, channel=entry.channel, status=entry.status.value,
        attempts=0, next_attempt_at=entry.due, created_at=entry.created_at,
        article_id=entry.article_id, narrative_id=entry.narrative_id, parent_id=parent_id,
        feed_id=entry.feed_id, story_id=entry.story_id,
    )
