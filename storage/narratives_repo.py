"""Narratives, their vectors, article passages and matches: what the matching stage stores.

Vectors are kept as float32 little-endian bytes, one row per embedded text. Writes that may
race (passages, matches) are dialect upserts on their keys, so concurrent callers neither fail
nor duplicate; they take row locks in a fixed order so that PostgreSQL does not deadlock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnExpressionArgument, Engine, Table, delete, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Select

from monitor.errors import NotFoundError, StorageError
from monitor.types import AlertIntent, ArticleText, Clock, Match, Narrative, OutboxRules, Tier, utc_now
from storage.db import reader
from storage.outbox_write import SessionFacts, write_entries
from storage.tables import (
    ArticlePassageRow,
    ArticleRow,
    LearnedExampleRow,
    MatchRow,
    NarrativeRow,
    NarrativeVectorRow,
)
from storage.vectors import Float, Keys, Vectors, checked_vectors, fill, replace_vectors, upsert

Passages = Mapping[int, tuple[Sequence[str], NDArray[Any]]]  # article id -> (texts, vectors)
_STREAM_ROWS = 2048  # vector rows fetched from the database at a time
_PASSAGES: Table = ArticlePassageRow.__table__  # type: ignore[assignment]
_NARRATIVE_VECTORS: Table = NarrativeVectorRow.__table__  # type: ignore[assignment]


def narrative_text_hash(narrative: Narrative) -> str:
    """sha256 over the texts that get embedded (title, examples, summary): changes mean re-embed."""
    texts = [narrative.title, list(narrative.examples), narrative.summary]
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()


class MatchStore:
    """Narratives and their vectors, article passages, and the matches between them."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # Narratives

    def upsert_narratives(self, narratives: Sequence[Narrative]) -> list[str]:
        """Insert new narratives, update changed ones; the ids that need (re-)embedding."""
        now = self._clock()
        needs_embedding: dict[str, None] = {}
        with self._sessions.begin() as session:
            for narrative in narratives:
                if _upsert_with_retry(session, narrative, now):
                    needs_embedding[narrative.id] = None
        return list(needs_embedding)

    def narratives(self, enabled_only: bool = False) -> list[Narrative]:
        """Stored narratives ordered by id."""
        return self._narratives(NarrativeRow.enabled if enabled_only else true())

    def narrative(self, narrative_id: str) -> Narrative | None:
        with self._sessions() as session:
            row = session.get(NarrativeRow, narrative_id)
            return _narrative(row) if row else None

    def set_enabled(self, narrative_id: str, enabled: bool) -> bool:
        """Switch a narrative on or off; False if there is no such narrative."""
        with self._sessions.begin() as session:
            row = session.get(NarrativeRow, narrative_id)
            if row is None:
                return False
            if row.enabled != enabled:
                row.enabled, row.updated_at = enabled, self._clock()
            return True

    def narratives_version(self) -> tuple[int, datetime | None]:
        """(count, latest update): changes whenever the stored narratives do."""
        query = select(func.count(), func.max(NarrativeRow.updated_at))
        with self._sessions() as session:
            count, latest = session.execute(query).one()
        return int(count), latest

    def narratives_missing_vectors(self, model_id: str) -> list[Narrative]:
        """Enabled narratives without vectors for the model (new, or changed since embedded)."""
        has_vectors = select(NarrativeVectorRow.row).where(
            NarrativeVectorRow.narrative_id == NarrativeRow.id, NarrativeVectorRow.model_id == model_id
        ).exists()
        return self._narratives(NarrativeRow.enabled, ~has_vectors)

    def _narratives(self, *conditions: ColumnExpressionArgument[bool]) -> list[Narrative]:
        query = select(NarrativeRow).where(*conditions).order_by(NarrativeRow.id)
        with self._sessions() as session:
            return [_narrative(row) for row in session.scalars(query)]

    def save_narrative_vectors(
        self, model_id: str, narrative_id: str, texts: Sequence[str], vectors: NDArray[Any]
    ) -> None:
        """Replace the narrative's vectors for the model: one row per text."""
        array = checked_vectors(texts, vectors)
        with self._sessions.begin() as session:
            if session.get(NarrativeRow, narrative_id) is None:
                raise NotFoundError("narrative", narrative_id, operation="save narrative vectors",
                                    hint="upsert it first")
            key = {"narrative_id": narrative_id, "model_id": model_id}
            replace_vectors(session, _NARRATIVE_VECTORS, key, "row", texts, array)

    def learned_texts(self, narrative_id: str) -> list[str]:
        """The narrative's learned examples in use (confirmed evidence), oldest first: embedded too."""
        query = select(LearnedExampleRow.text).where(
            LearnedExampleRow.narrative_id == narrative_id, LearnedExampleRow.removed_at.is_(None)
        ).order_by(LearnedExampleRow.id)
        with self._sessions() as session:
            return list(session.scalars(query))

    def load_narrative_vectors(self, model_id: str, enabled_only: bool = True) -> tuple[list[str], Vectors]:
        """The narrative id of each row, and all rows as one (rows x dimension) float32 matrix.

        With no rows for the model the matrix has shape (0, 0).
        """
        ids, _texts, matrix = self.load_narrative_rows(model_id, enabled_only, np.float32)
        return ids, matrix

    def load_narrative_rows(
        self, model_id: str, enabled_only: bool, dtype: type[Float]
    ) -> tuple[list[str], list[str], NDArray[Float]]:
        """`load_narrative_vectors` with the text each row embeds (for lexical evidence), as `dtype`."""
        query = (
            select(NarrativeVectorRow.narrative_id, NarrativeVectorRow.text, NarrativeVectorRow.vector)
            .join(NarrativeRow, NarrativeRow.id == NarrativeVectorRow.narrative_id)
            .where(NarrativeVectorRow.model_id == model_id, NarrativeRow.enabled if enabled_only else true())
            .order_by(NarrativeVectorRow.narrative_id, NarrativeVectorRow.row)
        )
        keys, matrix = self._read_vectors(query, model_id, dtype)
        return [key[0] for key in keys], [key[1] for key in keys], matrix

    def narrative_thresholds(self) -> dict[str, float]:
        """The own alert threshold of each enabled narrative that has one."""
        query = select(NarrativeRow.id, NarrativeRow.threshold).where(
            NarrativeRow.enabled, NarrativeRow.threshold.is_not(None)
        )
        with self.engine.connect() as connection:
            return {key: value for key, value in connection.execute(query) if value is not None}

    def _read_vectors(
        self, query: Select[*tuple[Any, ...]], model_id: str, dtype: type[Float]
    ) -> tuple[list[Keys], NDArray[Float]]:
        """The query's rows (vector last): their other columns, and the vectors as one matrix."""
        count = select(func.count()).select_from(query.order_by(None).subquery())
        # A reader: streaming 100,000 narratives must not hold the write lock the pollers need.
        with reader(self.engine).connect() as connection:
            expected = connection.execute(count).scalar_one()
            rows = connection.execution_options(yield_per=_STREAM_ROWS).execute(query)
            return fill(rows, expected, model_id, dtype)

    # Articles and their passages

    def articles_to_embed(
        self, model_id: str, limit: int, since: datetime | None = None
    ) -> list[ArticleText]:
        """Articles without passages for the model (fetched since `since`), no duplicates, oldest first."""
        embedded = select(ArticlePassageRow.idx).where(
            ArticlePassageRow.model_id == model_id, ArticlePassageRow.article_id == ArticleRow.id
        ).exists()
        query = select(ArticleRow.id, ArticleRow.title, ArticleRow.text).where(
            ArticleRow.duplicate_of.is_(None), ~embedded).order_by(ArticleRow.id).limit(limit)
        if since is not None:
            # In fetched order, so the plan reads the window through its index; in id order it
            # walked the primary key from the first article ever stored, a year of them.
            query = query.where(ArticleRow.fetched_at >= since).order_by(None).order_by(
                ArticleRow.fetched_at, ArticleRow.id)
        with self.engine.connect() as connection:
            return [ArticleText(row[0], row[1], row[2]) for row in connection.execute(query)]

    def save_passages_and_matches(
        self,
        model_id: str,
        passages: Passages,
        matches: Sequence[Match],
        alerts: Mapping[tuple[int, str], Sequence[AlertIntent]] | None = None,
        rules: OutboxRules | None = None,
    ) -> list[Match]:
        """Replace the articles' passages, upsert the matches, in one transaction; the new matches.

        `alerts` are the outbox intents of each (article, narrative); for the matches that are
        new, what `rules` make of them is written in the same transaction, so an alert is never
        lost nor sent twice.
        """
        checked = {aid: (texts, checked_vectors(texts, vecs)) for aid, (texts, vecs) in passages.items()}
        now = self._clock()
        with self._sessions.begin() as session:
            for article_id in sorted(checked):  # a fixed lock order: no deadlocks between callers
                texts, array = checked[article_id]
                key = {"article_id": article_id, "model_id": model_id}
                replace_vectors(session, _PASSAGES, key, "idx", texts, array)
            ordered = sorted(matches, key=lambda m: (m.article_id, m.narrative_id))
            new = [m for m in ordered if _upsert_match(session, model_id, m, now)]
            intents = [i for m in new for i in (alerts or {}).get((m.article_id, m.narrative_id), ())]
            if intents:
                if rules is None:
                    raise ValueError("alert intents need the outbox rules that turn them into writes")
                write_entries(session, rules(intents, SessionFacts(session), now))
        return new

    def recent_passages(self, model_id: str, since: datetime) -> tuple[list[int], list[str], Vectors]:
        """Passages of articles published at or after `since`: article id, text and vector per row."""
        query = (
            select(ArticlePassageRow.article_id, ArticlePassageRow.text, ArticlePassageRow.vector)
            .join(ArticleRow, ArticleRow.id == ArticlePassageRow.article_id)
            .where(ArticlePassageRow.model_id == model_id, ArticleRow.published_at >= since)
            .order_by(ArticlePassageRow.article_id, ArticlePassageRow.idx)
        )
        keys, matrix = self._read_vectors(query, model_id, np.float32)
        return [key[0] for key in keys], [key[1] for key in keys], matrix

    def passage_sample(self, model_id: str, limit: int) -> tuple[list[str], Vectors]:
        """Text and vector of up to `limit` passages of the most recently stored articles."""
        newest = (
            select(ArticlePassageRow.article_id, ArticlePassageRow.text, ArticlePassageRow.vector)
            .where(ArticlePassageRow.model_id == model_id)
            .order_by(ArticlePassageRow.article_id.desc(), ArticlePassageRow.idx)
            .limit(limit)
        )
        keys, matrix = self._read_vectors(newest, model_id, np.float32)
        return [key[1] for key in keys], matrix

    def delete_passages(self, model_id: str | None = None, article_ids: Sequence[int] | None = None) -> int:
        """Drop passages (of one model, or all; of some articles, or all) so they are embedded again."""
        statement = delete(ArticlePassageRow)
        if model_id is not None:
            statement = statement.where(ArticlePassageRow.model_id == model_id)
        if article_ids is not None:
            statement = statement.where(ArticlePassageRow.article_id.in_(article_ids))
        with self.engine.begin() as connection:
            return connection.execute(statement).rowcount

    # Matches

    def matches_for_article(self, article_id: int) -> list[Match]:
        """The article's matches, best first."""
        return self._matches(MatchRow.article_id == article_id)

    def matches(self, since: datetime | None = None, tier: Tier | None = None) -> list[Match]:
        """Matches first found at or after `since`, of one tier or both, best first."""
        return self._matches(
            MatchRow.created_at >= since if since is not None else true(),
            MatchRow.tier == tier.value if tier is not None else true(),
        )

    def _matches(self, *conditions: ColumnExpressionArgument[bool]) -> list[Match]:
        query = select(MatchRow).where(*conditions).order_by(MatchRow.score.desc(), MatchRow.id)
        with self._sessions() as session:
            return [_match(row) for row in session.scalars(query)]


def _upsert_with_retry(session: Session, narrative: Narrative, now: datetime) -> bool:
    # A concurrent import may insert the same new id first; then ours becomes an update.
    for _attempt in range(3):
        try:
            with session.begin_nested():
                return _upsert_narrative(session, narrative, now)
        except IntegrityError:
            continue
    raise StorageError(f"narrative {narrative.id!r} kept conflicting with concurrent writers",
                       operation="store narrative")


def _upsert_narrative(session: Session, narrative: Narrative, now: datetime) -> bool:
    """Store one narrative; True if it is new or its embedded texts changed."""
    fields = _narrative_fields(narrative)
    row = session.get(NarrativeRow, narrative.id)
    if row is None:
        session.add(NarrativeRow(id=narrative.id, **fields, created_at=now, updated_at=now))
        session.flush()
        return True
    if all(getattr(row, name) == value for name, value in fields.items()):
        return False
    text_changed = row.text_hash != narrative_text_hash(narrative)
    for name, value in fields.items():
        setattr(row, name, value)
    row.updated_at = now
    if text_changed:  # vectors of the old text would match the old claim
        session.execute(delete(NarrativeVectorRow).where(NarrativeVectorRow.narrative_id == narrative.id))
    session.flush()
    return text_changed


def _narrative_fields(narrative: Narrative) -> dict[str, Any]:
    return {
        "title": narrative.title, "summary": narrative.summary, "disproof": narrative.disproof,
        "examples": list(narrative.examples), "keywords": list(narrative.keywords),
        "tags": list(narrative.tags), "countries": list(narrative.countries), "url": narrative.url,
        "threshold": narrative.threshold, "enabled": narrative.enabled,
        "text_hash": narrative_text_hash(narrative),
    }


def _narrative(row: NarrativeRow) -> Narrative:
    return Narrative(
        id=row.id, title=row.title, summary=row.summary, examples=tuple(row.examples),
        keywords=tuple(row.keywords), tags=tuple(row.tags), countries=tuple(row.countries),
        url=row.url, threshold=row.threshold, enabled=row.enabled, disproof=row.disproof,
    )


def _match(row: MatchRow) -> Match:
    return Match(
        article_id=row.article_id, narrative_id=row.narrative_id, score=row.score,
        tier=Tier(row.tier), passage=row.passage, evidence=row.evidence,
    )


def _upsert_match(session: Session, model_id: str, match: Match, now: datetime) -> bool:
    """Insert the match, or update it in place if it changed; True if it was not there before."""
    values = {
        "score": match.score, "tier": match.tier.value, "passage": match.passage,
        "evidence": match.evidence, "model_id": model_id,
    }
    key = {"article_id": match.article_id, "narrative_id": match.narrative_id}
    insert = upsert(session, MatchRow.__table__)
    inserted = session.execute(
        insert.values(**key, **values, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(MatchRow.id)
    ).first()
    if inserted is not None:
        return True
    changed = or_(*(getattr(MatchRow, name) != value for name, value in values.items()))
    session.execute(
        update(MatchRow)
        .where(MatchRow.article_id == match.article_id, MatchRow.narrative_id == match.narrative_id)
        .where(changed)
        .values(**values, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return False
