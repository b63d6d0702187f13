"""Analysts' labels with their history, narrative mutes and learned examples.

Storage answers and persists; what a label means (learn from it, hold copies back) is decided
by monitor/feedback and alerts/. A label request runs in one transaction: the current label is
ended and the new one written, and a partial unique index allows one current label per alert,
so a double click racing itself stores one label.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StorageError
from monitor.types import (
    AlertKind,
    AlertTarget,
    Clock,
    Label,
    LabelChange,
    LabelEnd,
    LabelledScore,
    LabelRecord,
    LabelSource,
    LearnedExample,
    Mute,
    utc_now,
)
from storage.tables import (
    AlertRow,
    ArticleRow,
    CalibrationRow,
    FeedbackLabelRow,
    LearnedExampleRow,
    MatchRow,
    NarrativeMuteRow,
    NarrativeRow,
    NarrativeVectorRow,
)

T = TypeVar("T")
ALERT_THRESHOLD = "alert_threshold"  # the calibration row that overrides [matching] alert_threshold
_ATTEMPTS = 3  # a racing click that lost the unique index is replayed on the winner's state


class FeedbackStore:
    """Labels, mutes and learned examples."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # Labels

    def target(self, alert_id: int) -> AlertTarget | None:
        """The alert (kind `alert`, not a reply or summary) and its match; None when there is none."""
        query = (
            select(AlertRow.id, MatchRow.article_id, MatchRow.narrative_id, NarrativeRow.title,
                   MatchRow.evidence, MatchRow.passage, MatchRow.score)
            .join(MatchRow, (MatchRow.article_id == AlertRow.article_id)
                  & (MatchRow.narrative_id == AlertRow.narrative_id))
            .join(NarrativeRow, NarrativeRow.id == MatchRow.narrative_id)
            .where(AlertRow.id == alert_id, AlertRow.kind == AlertKind.ALERT.value)
        )
        with self._sessions() as session:
            row = session.execute(query).first()
        return AlertTarget(*row) if row else None

    def apply(
        self, target: AlertTarget, label: Label | None, user: str, *, at: datetime,
        source: LabelSource, note: str | None = None, learn: str | None = None,
    ) -> LabelChange:
        """Make `label` the alert's current one (None: no label), keeping the old one as history.

        Repeating the current state changes nothing. `learn` is the text to keep as a learned
        example of the narrative with a new label; the example of an ended label is removed.
        """
        def attempt(session: Session) -> LabelChange:
            current = self._current(session, target.alert_id, lock=True)
            if (current.label if current else None) == (label.value if label else None):
                record = _record(current) if current else None
                return LabelChange(record, record, changed=False)
            if current is not None:
                how = LabelEnd.REPLACED if label is not None else LabelEnd.UNDONE
                current.ended_at, current.ended_by, current.ended_how = at, user, how.value
                self._unlearn(session, current.id, at, target.narrative_id)
                session.flush()
            previous = _record(current) if current else None
            if label is None:
                return LabelChange(None, previous, changed=True)
            row = FeedbackLabelRow(alert_id=target.alert_id, article_id=target.article_id,
                                   narrative_id=target.narrative_id, label=label.value, user=user,
                                   note=note, source=source.value, at=at)
            session.add(row)
            session.flush()
            example = None
            if learn:
                example = LearnedExampleRow(narrative_id=target.narrative_id, text=learn, label_id=row.id,
                                            alert_id=target.alert_id, added_by=user, added_at=at)
                session.add(example)
                session.flush()
                _reembed(session, target.narrative_id, self._clock())
            return LabelChange(_record(row), previous, changed=True,
                               learned_example_id=example.id if example else None)

        return self._retrying(attempt, "store label")

    def current(self, alert_id: int) -> LabelRecord | None:
        """The alert's current label."""
        with self._sessions() as session:
            row = self._current(session, alert_id)
            return _record(row) if row else None

    def history(self, alert_id: int) -> list[LabelRecord]:
        """Every label the alert was given, oldest first."""
        query = select(FeedbackLabelRow).where(FeedbackLabelRow.alert_id == alert_id).order_by(
            FeedbackLabelRow.id)
        with self._sessions() as session:
            return [_record(row) for row in session.scalars(query)]

    def labels(self, since: datetime | None = None, until: datetime | None = None) -> list[LabelRecord]:
        """Current labels given in [since, until), oldest first."""
        query = select(FeedbackLabelRow).where(FeedbackLabelRow.ended_at.is_(None))
        if since is not None:
            query = query.where(FeedbackLabelRow.at >= since)
        if until is not None:
            query = query.where(FeedbackLabelRow.at < until)
        with self._sessions() as session:
            return [_record(row) for row in session.scalars(query.order_by(FeedbackLabelRow.at,
                                                                           FeedbackLabelRow.id))]

    def _current(self, session: Session, alert_id: int, *, lock: bool = False) -> FeedbackLabelRow | None:
        query = select(FeedbackLabelRow).where(FeedbackLabelRow.alert_id == alert_id,
                                               FeedbackLabelRow.ended_at.is_(None))
        # Locked when it is about to change: a click racing a change of mind waits for it.
        return session.scalars(query.with_for_update() if lock else query).first()

    def _unlearn(self, session: Session, label_id: int, at: datetime, narrative_id: str) -> None:
        removed = session.connection().execute(
            update(LearnedExampleRow)
            .where(LearnedExampleRow.label_id == label_id, LearnedExampleRow.removed_at.is_(None))
            .values(removed_at=at)
        ).rowcount
        if removed:
            _reembed(session, narrative_id, self._clock())

    def _retrying(self, work: Callable[[Session], T], operation: str) -> T:
        for _attempt in range(_ATTEMPTS):
            try:
                with self._sessions.begin() as session:
                    return work(session)
            except IntegrityError:
                continue  # another click on the same alert committed first: replay on its state
        raise StorageError("kept conflicting with concurrent labels", operation=operation)

    def labelled_scores(self) -> list[LabelledScore]:
        """Each current label with its match's score: what calibration works from."""
        query = (
            select(FeedbackLabelRow.narrative_id, MatchRow.score, FeedbackLabelRow.label)
            .join(MatchRow, (MatchRow.article_id == FeedbackLabelRow.article_id)
                  & (MatchRow.narrative_id == FeedbackLabelRow.narrative_id))
            .where(FeedbackLabelRow.ended_at.is_(None))
            .order_by(FeedbackLabelRow.id)
        )
        with self._sessions() as session:
            return [LabelledScore(narrative_id, score, label == Label.CONFIRMED.value)
                    for narrative_id, score, label in session.execute(query)]

    def article_texts(self, article_ids: Collection[int]) -> dict[int, tuple[str, str]]:
        """Title and text of each article (for `feedback export`)."""
        query = select(ArticleRow.id, ArticleRow.title, ArticleRow.text).where(ArticleRow.id.in_(article_ids))
        with self._sessions() as session:
            return {article_id: (title, body) for article_id, title, body in session.execute(query)}

    # Calibration

    def calibrated_alert_threshold(self) -> float | None:
        """The global alert threshold `monitor calibrate --apply` stored, if any."""
        with self._sessions() as session:
            row = session.get(CalibrationRow, ALERT_THRESHOLD)
            return row.value if row else None

    def store_calibration(self, alert_threshold: float | None, labels: int,
                          narratives: Mapping[str, float]) -> None:
        """Store a global alert threshold (None: leave it) and narratives' own, in one transaction."""
        now = self._clock()
        with self._sessions.begin() as session:
            if alert_threshold is not None:
                row = session.get(CalibrationRow, ALERT_THRESHOLD) or CalibrationRow(name=ALERT_THRESHOLD)
                row.value, row.labels, row.updated_at = alert_threshold, labels, now
                session.add(row)
            for narrative_id, threshold in sorted(narratives.items()):
                session.execute(update(NarrativeRow).where(NarrativeRow.id == narrative_id)
                                .values(threshold=threshold, updated_at=now))

    def clear_calibrated_alert_threshold(self) -> bool:
        """Go back to `[matching] alert_threshold`; False when none was stored."""
        with self._sessions.begin() as session:
            statement = delete(CalibrationRow).where(CalibrationRow.name == ALERT_THRESHOLD)
            return session.connection().execute(statement).rowcount > 0

    # Mutes

    def mute(self, narrative_id: str, until: datetime, by: str, at: datetime) -> bool:
        """Mute a narrative until `until` (replacing an earlier mute); False without such narrative."""
        def work(session: Session) -> bool:
            if session.get(NarrativeRow, narrative_id) is None:
                return False
            row = session.get(NarrativeMuteRow, narrative_id)
            if row is None:
                session.add(NarrativeMuteRow(narrative_id=narrative_id, until=until, muted_by=by,
                                             muted_at=at))
            else:
                row.until, row.muted_by, row.muted_at = until, by, at
            return True

        return self._retrying(work, "mute narrative")

    def unmute(self, narrative_id: str) -> bool:
        """End a narrative's mute; False when it was not muted."""
        with self._sessions.begin() as session:
            statement = delete(NarrativeMuteRow).where(NarrativeMuteRow.narrative_id == narrative_id)
            return session.connection().execute(statement).rowcount > 0

    def mutes(self, now: datetime | None = None) -> list[Mute]:
        """Mutes still running at `now` (every stored one when None), by narrative id."""
        query = select(NarrativeMuteRow).order_by(NarrativeMuteRow.narrative_id)
        if now is not None:
            query = query.where(NarrativeMuteRow.until > now)
        with self._sessions() as session:
            return [Mute(r.narrative_id, r.until, r.muted_by, r.muted_at) for r in session.scalars(query)]

    # Learned examples

    def learned(self, narrative_id: str | None = None) -> list[LearnedExample]:
        """Learned examples still in use (of one narrative), oldest first."""
        query = select(LearnedExampleRow).where(LearnedExampleRow.removed_at.is_(None))
        if narrative_id is not None:
            query = query.where(LearnedExampleRow.narrative_id == narrative_id)
        with self._sessions() as session:
            return [
                LearnedExample(r.id, r.narrative_id, r.text, r.alert_id, r.added_by, r.added_at)
                for r in session.scalars(query.order_by(LearnedExampleRow.id))
            ]

    def forget(self, narrative_id: str, example_id: int) -> bool:
        """Stop using a learned example (the narrative is re-embedded); False when there is none."""
        now = self._clock()
        with self._sessions.begin() as session:
            removed = session.connection().execute(
                update(LearnedExampleRow)
                .where(LearnedExampleRow.id == example_id, LearnedExampleRow.narrative_id == narrative_id,
                       LearnedExampleRow.removed_at.is_(None))
                .values(removed_at=now)
            ).rowcount
            if removed:
                _reembed(session, narrative_id, now)
            return removed > 0


def _reembed(session: Session, narrative_id: str, now: datetime) -> None:
    """Drop the narrative's vectors and touch it: every matching stage re-embeds it on its next pass."""
    session.execute(delete(NarrativeVectorRow).where(NarrativeVectorRow.narrative_id == narrative_id))
    session.execute(update(NarrativeRow).where(NarrativeRow.id == narrative_id).values(updated_at=now))


def _record(row: FeedbackLabelRow) -> LabelRecord:
    return LabelRecord(
        id=row.id, alert_id=row.alert_id, article_id=row.article_id, narrative_id=row.narrative_id,
        label=Label(row.label), user=row.user, note=row.note, source=LabelSource(row.source), at=row.at,
        ended_at=row.ended_at, ended_by=row.ended_by,
        ended_how=LabelEnd(row.ended_how) if row.ended_how else None,
    )
