"""Stories: the window the update reads, what it writes, and the stories as commands show them.

One update is one transaction that begins by locking the `story_lock` row, so two updates
(`monitor run` and `monitor stories update`, or two workers) never interleave: the second
reads what the first wrote. What to write is computed by the caller (monitor.stories) from
what this module loads; the Slack posts it decides are written in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, and_, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.types import (
    Clock,
    MemberMatch,
    OutboxEntry,
    StoredStory,
    Story,
    StoryFacts,
    StoryPlan,
    StoryState,
    Tier,
    WindowArticle,
    utc_now,
)
from storage.outbox_write import write_entries
from storage.tables import (
    ArticlePassageRow,
    ArticleRow,
    FeedRow,
    MatchRow,
    StoryArticleRow,
    StoryHistoryRow,
    StoryLockRow,
    StoryRow,
)
from storage.vectors import Vectors, fill, upsert

Compute = Callable[[list[WindowArticle], Vectors, dict[int, StoredStory], StoryFacts], StoryPlan]
Posts = Callable[[Sequence[int], datetime], list[OutboxEntry]]
ACTIVE, MERGED, ENDED = "active", "merged", "ended"


class StoryStore:
    """Persists stories and their members; answers `monitor stories` and the digest."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    def update(self, model_id: str, since: datetime, carriers: tuple[datetime, int], compute: Compute,
               posts: Posts) -> tuple[StoryPlan, dict[int, int]]:
        """Load the window, let `compute` plan, write the plan; the plan and its keys' story ids."""
        with self._sessions.begin() as session:
            session.execute(select(StoryLockRow).where(StoryLockRow.id == 1).with_for_update())
            now = self._clock()
            articles, vectors = _window(session, model_id, since)
            stored = _stored(session, {a.story_id for a in articles if a.story_id is not None})
            plan = compute(articles, vectors, stored, _facts(session, articles, *carriers))
            ids = _write(session, plan, now)
            session.execute(update(StoryRow).where(StoryRow.status == ACTIVE, StoryRow.last_seen < since)
                            .values(status=ENDED, emerging=False))
            write_entries(session, posts([ids[k] for k in plan.posts], now))
            session.execute(update(StoryLockRow).where(StoryLockRow.id == 1).values(updated_at=now))
        return plan, ids

    def stories(self, *, active_only: bool = True, emerging_only: bool = False) -> list[Story]:
        """Stories, the latest first."""
        query = select(StoryRow).order_by(StoryRow.last_seen.desc(), StoryRow.id.desc())
        if active_only:
            query = query.where(StoryRow.status == ACTIVE)
        if emerging_only:
            query = query.where(StoryRow.emerging.is_(True))
        with self._sessions() as session:
            rows = list(session.scalars(query))
            members = _members(session, [r.id for r in rows])
            return [_story(r, members.get(r.id, [])) for r in rows]

    def emerged(self, start: datetime, end: datetime) -> list[Story]:
        """Stories that became emerging before `end` and were told on or after `start`."""
        query = select(StoryRow).where(
            StoryRow.emerging_since < end, StoryRow.last_seen >= start, StoryRow.status != MERGED
        ).order_by(StoryRow.growth.desc(), StoryRow.id)
        with self._sessions() as session:
            rows = list(session.scalars(query))
            members = _members(session, [r.id for r in rows])
            return [_story(r, members.get(r.id, [])) for r in rows]

    def story(self, story_id: int) -> Story | None:
        """One story with its members and hourly history."""
        with self._sessions() as session:
            row = session.get(StoryRow, story_id)
            if row is None:
                return None
            history = session.execute(
                select(StoryHistoryRow.hour, StoryHistoryRow.size)
                .where(StoryHistoryRow.story_id == story_id).order_by(StoryHistoryRow.hour)
            ).all()
            return _story(row, _members(session, [story_id]).get(story_id, []),
                          tuple((hour, size) for hour, size in history))

    def set_promoted(self, story_id: int, narrative_id: str) -> None:
        """Record the narrative a story was promoted to."""
        with self._sessions.begin() as session:
            session.execute(update(StoryRow).where(StoryRow.id == story_id)
                            .values(promoted_to=narrative_id, narrative_id=narrative_id))


def _window(session: Session, model_id: str, since: datetime) -> tuple[list[WindowArticle], Vectors]:
    """Articles published since `since` with a lead vector (copies: their original's), then older
    members of the stories they are in."""
    columns = (ArticleRow.id, ArticleRow.feed_id, ArticleRow.title, ArticlePassageRow.text, ArticleRow.url,
               ArticleRow.language, ArticleRow.published_at, ArticleRow.duplicate_of,
               StoryArticleRow.article_id, StoryArticleRow.story_id, StoryArticleRow.unit_id)
    # A same-text copy is never embedded: it is read with its original's lead.
    lead_of = func.coalesce(ArticleRow.duplicate_of, ArticleRow.id)
    base = (
        select(*columns, ArticlePassageRow.vector)
        .join(ArticlePassageRow, and_(ArticlePassageRow.article_id == lead_of,
                                      ArticlePassageRow.model_id == model_id, ArticlePassageRow.idx == 0))
        .outerjoin(StoryArticleRow, StoryArticleRow.article_id == ArticleRow.id)
    )
    live = (
        select(StoryArticleRow.story_id).join(ArticleRow, ArticleRow.id == StoryArticleRow.article_id)
        .join(StoryRow, StoryRow.id == StoryArticleRow.story_id)
        .where(ArticleRow.published_at >= since, StoryRow.status == ACTIVE).distinct()
    )
    recent = base.where(ArticleRow.published_at >= since).order_by(ArticleRow.id)
    older = base.where(ArticleRow.published_at < since, StoryArticleRow.story_id.in_(live))
    expected = session.scalar(
        select(func.count()).select_from(ArticleRow).where(ArticleRow.published_at >= since))
    rows = [*session.execute(recent), *session.execute(older.order_by(ArticleRow.id))]
    keys, vectors = fill(rows, expected or 0, model_id, np.float32)
    articles = [
        WindowArticle(article_id=k[0], feed_id=k[1], title=k[2], lead=k[3], url=k[4], language=k[5],
                      published=k[6], duplicate_of=k[7], in_window=k[6] >= since, seen=k[8] is not None,
                      story_id=k[9], unit_id=k[10])
        for k in keys
    ]
    return articles, vectors


def _stored(session: Session, story_ids: set[int]) -> dict[int, StoredStory]:
    if not story_ids:
        return {}
    rows = session.scalars(select(StoryRow).where(StoryRow.id.in_(sorted(story_ids))))
    return {r.id: StoredStory(r.id, r.first_seen, r.emerging_since, tuple(r.merged_from or ()), r.split_from,
                              r.promoted_to) for r in rows}


def _facts(session: Session, articles: Sequence[WindowArticle], since: datetime, least: int) -> StoryFacts:
    """Carrier feeds (at least `least` matches since `since`), the members' matches, outlet names."""
    carriers = session.scalars(
        select(ArticleRow.feed_id).join(MatchRow, MatchRow.article_id == ArticleRow.id)
        .where(MatchRow.created_at >= since).group_by(ArticleRow.feed_id).having(func.count() >= least)
    )
    matches: list[MemberMatch] = []
    if articles:
        oldest = min(a.published for a in articles)
        loaded = {a.article_id for a in articles}
        rows = session.execute(
            select(MatchRow.article_id, MatchRow.narrative_id, MatchRow.score, MatchRow.tier)
            .join(ArticleRow, ArticleRow.id == MatchRow.article_id).where(ArticleRow.published_at >= oldest)
        )
        matches = [MemberMatch(a, n, s, t == Tier.ALERT.value) for a, n, s, t in rows if a in loaded]
    names = {f: n or f for f, n in session.execute(select(FeedRow.id, FeedRow.name))}
    return StoryFacts(frozenset(carriers), tuple(matches), names)


def _write(session: Session, plan: StoryPlan, now: datetime) -> dict[int, int]:
    """Stories created or updated, merged and ended, members and history; key -> story id."""
    ids: dict[int, int] = {}
    for state in plan.stories:
        row = session.get(StoryRow, state.key) if state.key > 0 else None
        if row is None:
            row = StoryRow(status=ACTIVE, promoted_to=None, merged_into=None)
            session.add(row)
        _fill(row, state, now)
        session.flush()
        ids[state.key] = row.id
    for old, into in plan.absorbed.items():
        session.execute(update(StoryRow).where(StoryRow.id == old).values(
            status=MERGED, merged_into=ids.get(into, into), emerging=False, updated_at=now))
    if plan.ended:
        session.execute(update(StoryRow).where(StoryRow.id.in_(plan.ended))
                        .values(status=ENDED, emerging=False, updated_at=now))
    members = [{"article_id": a, "story_id": ids.get(k, k) if k is not None else None, "unit_id": u,
                "seen_at": now} for a, (k, u) in plan.seen.items()]
    if members:
        insert = upsert(session, StoryArticleRow.__table__)
        session.execute(insert.on_conflict_do_update(
            index_elements=["article_id"],
            set_={"story_id": insert.excluded.story_id, "unit_id": insert.excluded.unit_id}), members)
    hour = now.replace(minute=0, second=0, microsecond=0)
    history = [{"story_id": ids[s.key], "hour": hour, "size": s.size, "sources": s.sources}
               for s in plan.stories]
    if history:
        insert = upsert(session, StoryHistoryRow.__table__)
        session.execute(insert.on_conflict_do_update(
            index_elements=["story_id", "hour"],
            set_={"size": insert.excluded.size, "sources": insert.excluded.sources}), history)
    return ids


def _fill(row: StoryRow, s: StoryState, now: datetime) -> None:
    row.status, row.label, row.representative_id = ACTIVE, s.label, s.representative_id
    row.terms, row.outlets = list(s.terms), list(s.outlets)
    row.languages, row.tags = list(s.languages), list(s.tags)
    row.size, row.sources, row.growth = s.size, s.sources, s.growth
    if row.promoted_to is None:  # a promoted story keeps pointing at its narrative
        row.narrative_id, row.narrative_score = s.narrative_id, s.narrative_score
    row.known_alert, row.emerging, row.emerging_since = s.known_alert, s.emerging, s.emerging_since
    row.merged_from, row.split_from = list(s.merged_from), s.split_from
    row.first_seen, row.last_seen, row.updated_at = s.first_seen, s.last_seen, now


def _members(session: Session, story_ids: Sequence[int]) -> dict[int, list[tuple[str | None, str]]]:
    """Each story's members as (url, title), earliest first."""
    found: dict[int, list[tuple[str | None, str]]] = {}
    if not story_ids:
        return found
    rows = session.execute(
        select(StoryArticleRow.story_id, ArticleRow.url, ArticleRow.title)
        .join(ArticleRow, ArticleRow.id == StoryArticleRow.article_id)
        .where(StoryArticleRow.story_id.in_(list(story_ids)))
        .order_by(ArticleRow.published_at, ArticleRow.id)
    )
    for story_id, url, title in rows:
        if story_id is not None:
            found.setdefault(story_id, []).append((url, title))
    return found


def _story(row: StoryRow, members: Sequence[tuple[str | None, str]],
           history: tuple[tuple[datetime, int], ...] = ()) -> Story:
    titles = [row.label, *(t for _, t in members if t != row.label)]
    fields: dict[str, Any] = {
        "id": row.id, "label": row.label, "terms": tuple(row.terms), "size": row.size, "sources": row.sources,
        "outlets": tuple(row.outlets), "languages": tuple(row.languages), "tags": tuple(row.tags),
        "urls": tuple(u for u, _ in members if u), "narrative_id": row.narrative_id,
        "narrative_score": row.narrative_score, "emerging": row.emerging, "growth": row.growth,
        "first_seen": row.first_seen, "last_seen": row.last_seen, "status": row.status,
        "merged_into": row.merged_into, "merged_from": tuple(row.merged_from or ()),
        "split_from": row.split_from, "promoted_to": row.promoted_to, "history": history,
        "titles": tuple(dict.fromkeys(titles)), "articles": tuple((t, u) for u, t in members),
    }
    return Story(**fields)
