"""The repository: takes and returns `monitor.types` values; ORM rows never leave this module."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Engine, Table, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import NotFoundError, StorageError
from monitor.types import (
    Article,
    Clock,
    CopyRules,
    Feed,
    FeedReport,
    FeedState,
    FeedStatus,
    StoredArticle,
    StoredCopy,
    StoreOutcome,
    utc_now,
)
from storage.db import reader, write_error
from storage.outbox_write import SessionFacts, write_entries
from storage.tables import ArticlePassageRow, ArticleRow, ArticleSourceRow, FeedRow

_IN_CHUNK = 500  # values in one IN (...): well under every backend's parameter limit
# Articles stored per write transaction: SQLite has one writer at a time, and a 45,000-item
# feed in one transaction held everyone else (polls, `monitor status`) out for over a minute.
STORE_BATCH = 500


class Repository:
    """Feeds' polling state and the articles they delivered."""

    def __init__(self, engine: Engine, clock: Clock = utc_now, batch: int = STORE_BATCH) -> None:
        self.engine = engine
        self.batch = batch
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._reads = sessionmaker(reader(engine), expire_on_commit=False)  # never write in these
        self._clock = clock

    # Feeds

    def sync_feeds(self, feeds: Iterable[Feed]) -> None:
        """Make the feeds table agree with the configuration; state survives unless the URL changed."""
        feeds = list(feeds)
        if not self._out_of_sync(feeds):
            return  # nothing to write: no write lock taken, so `feeds list` never waits for a poll
        with self._sessions.begin() as session:
            for feed in feeds:
                row = session.get(FeedRow, feed.id)
                if row is None:
                    session.add(_new_feed_row(feed, self._clock()))
                elif row.config_url != feed.url:
                    _reset_feed_row(row, feed)
                else:
                    row.name = feed.name

    def _out_of_sync(self, feeds: Sequence[Feed]) -> bool:
        """Whether any feed is missing from the table or differs in URL or name."""
        stored: dict[str, tuple[str, str | None]] = {}
        ids = [feed.id for feed in feeds]
        with self._reads() as session:
            for start in range(0, len(ids), _IN_CHUNK):
                query = select(FeedRow.id, FeedRow.config_url, FeedRow.name).where(
                    FeedRow.id.in_(ids[start : start + _IN_CHUNK]))
                stored.update((row_id, (url, name)) for row_id, url, name in session.execute(query))
        return any(stored.get(feed.id) != (feed.url, feed.name) for feed in feeds)

    def reset_feed(self, feed: Feed) -> None:
        """Forget errors, backoff and a 410: the feed is polled again from its configured URL."""
        with self._sessions.begin() as session:
            row = session.get(FeedRow, feed.id)
            if row is None:
                session.add(_new_feed_row(feed, self._clock()))
            else:
                _reset_feed_row(row, feed)

    def feed_state(self, feed_id: str) -> FeedState | None:
        """The polling state of one feed, or None if it was never synced."""
        with self._reads() as session:
            row = session.get(FeedRow, feed_id)
            return _feed_state(row) if row else None

    def feed_states(self, feed_ids: Sequence[str]) -> dict[str, FeedState]:
        """The polling state of each feed that was synced, by id."""
        states: dict[str, FeedState] = {}
        with self._reads() as session:
            for start in range(0, len(feed_ids), _IN_CHUNK):
                chunk = feed_ids[start : start + _IN_CHUNK]
                states.update((row.id, _feed_state(row))
                              for row in session.scalars(select(FeedRow).where(FeedRow.id.in_(chunk))))
        return states

    def save_feed_state(self, state: FeedState) -> None:
        """Record the outcome of a poll that stored no articles (304, errors, 410)."""
        self.save_feed_states([state])

    def save_feed_states(self, states: Sequence[FeedState]) -> None:
        """Record the outcomes of several such polls in one transaction (a round's 304s)."""
        if not states:
            return
        try:
            with self._sessions.begin() as session:
                _update_states(session, states)
        except SQLAlchemyError as exc:
            raise write_error(exc, "save feed state") from exc

    def record_success(
        self, state: FeedState, articles: Sequence[Article], copies: CopyRules | None = None
    ) -> list[StoredArticle]:
        """Store a fetched document's articles, `batch` per transaction, the feed's new state with the last.

        A crash between batches leaves the old state, validators included: the next poll fetches
        the document again and stores the rest, finding the stored ones unchanged. For each
        article stored as a copy of another, what `copies` make of it (replies under the
        original's alerts) is written to the outbox in the article's transaction.
        """
        stored: list[StoredArticle] = []
        starts = range(0, len(articles), self.batch) if articles else [0]
        try:
            for start in starts:
                with self._sessions.begin() as session:
                    batch = articles[start : start + self.batch]
                    unchanged = _unchanged(session, batch)
                    done = [unchanged.get((a.feed_id, a.guid_hash)) or self._store_one(session, a, copies)
                            for a in batch]
                    _count_sources(session, batch, done)
                    stored += done
                    if start + self.batch >= len(articles):
                        _update_states(session, [state])
        except SQLAlchemyError as exc:
            raise write_error(exc, "store articles") from exc
        return stored

    def stored_guids(self, feed_id: str, guid_hashes: Sequence[str]) -> set[str]:
        """Which of these guid hashes the feed delivered before."""
        found: set[str] = set()
        with self._reads() as session:
            for start in range(0, len(guid_hashes), _IN_CHUNK):
                chunk = guid_hashes[start : start + _IN_CHUNK]
                found.update(session.scalars(select(ArticleSourceRow.guid_hash).where(
                    ArticleSourceRow.feed_id == feed_id, ArticleSourceRow.guid_hash.in_(chunk))))
        return found

    def feed_reports(self, feeds: Sequence[Feed]) -> list[FeedReport]:
        """Health of each configured feed, then of feeds removed from the configuration."""
        configured = {feed.id: feed for feed in feeds}
        with self._reads() as session:
            rows = {row.id: row for row in session.scalars(select(FeedRow))}
        counts = {row.id: row.article_count for row in rows.values()}
        reports = [_report(f.id, rows.get(f.id), f, counts.get(f.id, 0)) for f in feeds]
        removed = sorted(set(rows) - set(configured))
        return reports + [_report(i, rows[i], None, counts.get(i, 0)) for i in removed]

    # Articles

    def _store_one(self, session: Session, article: Article, copies: CopyRules | None) -> StoredArticle:
        # A savepoint per article: a concurrent insert of the same URL by another feed makes
        # ours fail on the unique key; we then find theirs and record this one as a duplicate.
        for _attempt in range(3):
            try:
                with session.begin_nested():
                    now = self._clock()
                    stored = _store(session, article, now)
                    if copies is not None and stored.outcome is StoreOutcome.DUPLICATE:
                        assert stored.duplicate_of is not None and stored.id is not None
                        copy = StoredCopy(stored.duplicate_of, stored.id, article.feed_id)
                        write_entries(session, copies(copy, SessionFacts(session), now))
                    return stored
            except IntegrityError:
                continue
        raise StorageError(f"article {article.guid!r} of feed {article.feed_id!r} kept conflicting "
                           "with concurrent writers", operation="store article")

    def article_count(self, feed_id: str | None = None) -> int:
        """How many articles are stored (for one feed: how many it delivered)."""
        with self._reads() as session:
            if feed_id is None:
                return session.scalar(select(func.count()).select_from(ArticleRow)) or 0
            query = select(func.count()).where(ArticleSourceRow.feed_id == feed_id)
            return session.scalar(query) or 0

    def articles(self, ids: Sequence[int] | None = None) -> list[tuple[int, Article]]:
        """Stored articles (all, or the given ids), oldest first."""
        query = select(ArticleRow).order_by(ArticleRow.id)
        if ids is not None:
            query = query.where(ArticleRow.id.in_(ids))
        with self._reads() as session:
            return [(row.id, _article(row)) for row in session.scalars(query)]


def _store(session: Session, article: Article, now: datetime) -> StoredArticle:
    source = session.get(ArticleSourceRow, (article.feed_id, article.guid_hash))
    if source is not None:
        if source.article_id is None:  # pruned: seen before, not to be stored again
            return StoredArticle(None, StoreOutcome.UNCHANGED)
        return _restore(session, source.article_id, article, now)
    if article.url is not None:
        same_url = session.scalar(select(ArticleRow.id).where(ArticleRow.url == article.url))
        if same_url is not None:
            _add_source(session, article, same_url, now)
            return StoredArticle(same_url, StoreOutcome.DUPLICATE, duplicate_of=same_url)
    same_text = session.scalar(
        select(func.min(ArticleRow.id)).where(ArticleRow.content_hash == article.content_hash)
    )
    row = _article_row(article, duplicate_of=same_text)
    session.add(row)
    session.flush()
    _add_source(session, article, row.id, now)
    outcome = StoreOutcome.NEW if same_text is None else StoreOutcome.DUPLICATE
    return StoredArticle(row.id, outcome, duplicate_of=same_text)


def _restore(session: Session, article_id: int, article: Article, now: datetime) -> StoredArticle:
    """A guid seen before: update the article if its own feed changed the content."""
    row = session.get_one(ArticleRow, article_id)
    if row.feed_id != article.feed_id or row.content_hash == article.content_hash:
        return StoredArticle(row.id, StoreOutcome.UNCHANGED, duplicate_of=row.duplicate_of)
    row.title, row.text, row.author = article.title, article.text, article.author
    row.content_hash, row.updated_at = article.content_hash, now
    # The text changed: drop its passages so the matching stage embeds and matches it again.
    session.execute(delete(ArticlePassageRow).where(ArticlePassageRow.article_id == row.id))
    return StoredArticle(row.id, StoreOutcome.UPDATED, duplicate_of=row.duplicate_of)


def _add_source(session: Session, article: Article, article_id: int, now: datetime) -> None:
    session.add(
        ArticleSourceRow(
            feed_id=article.feed_id, guid_hash=article.guid_hash, article_id=article_id,
            first_seen_at=now,
        )
    )
    session.flush()


def _article_row(article: Article, duplicate_of: int | None) -> ArticleRow:
    return ArticleRow(
        feed_id=article.feed_id, guid=article.guid, guid_hash=article.guid_hash, url=article.url,
        title=article.title, text=article.text, author=article.author,
        language=article.language, published_at=article.published,
        fetched_at=article.fetched, content_hash=article.content_hash,
        duplicate_of=duplicate_of,
    )


def _article(row: ArticleRow) -> Article:
    return Article(
        feed_id=row.feed_id, guid=row.guid, guid_hash=row.guid_hash, url=row.url,
        title=row.title, text=row.text, author=row.author, language=row.language,
        published=row.published_at, fetched=row.fetched_at, content_hash=row.content_hash,
    )


def _unchanged(session: Session, articles: Sequence[Article]) -> dict[tuple[str, str], StoredArticle]:
    """The articles `_store` would find unchanged, by (feed, guid hash), in one query per feed.

    A re-fetched document mostly repeats what is stored; those entries then cost no savepoint
    and no lookups of their own.
    """
    by_feed: dict[str, dict[str, Article]] = {}
    for article in articles:
        by_feed.setdefault(article.feed_id, {}).setdefault(article.guid_hash, article)
    found: dict[tuple[str, str], StoredArticle] = {}
    for feed_id, by_hash in by_feed.items():
        hashes = list(by_hash)
        for start in range(0, len(hashes), _IN_CHUNK):
            query = (
                select(ArticleSourceRow.guid_hash, ArticleRow.id, ArticleRow.feed_id,
                       ArticleRow.content_hash, ArticleRow.duplicate_of)
                .outerjoin(ArticleRow, ArticleRow.id == ArticleSourceRow.article_id)
                .where(ArticleSourceRow.feed_id == feed_id,
                       ArticleSourceRow.guid_hash.in_(hashes[start : start + _IN_CHUNK]))
            )
            for guid_hash, article_id, owner, stored_hash, duplicate_of in session.execute(query):
                # As in _restore: another feed's article, or the same text, is left alone;
                # so is an item whose article was pruned (no owner).
                if owner is None or owner != feed_id or stored_hash == by_hash[guid_hash].content_hash:
                    found[(feed_id, guid_hash)] = StoredArticle(
                        article_id, StoreOutcome.UNCHANGED, duplicate_of=duplicate_of
                    )
    return found


def _count_sources(session: Session, articles: Sequence[Article], stored: Sequence[StoredArticle]) -> None:
    """Add the (feed, guid) keys just written (new articles and copies) to their feeds' counts."""
    added: dict[str, int] = {}
    for article, outcome in zip(articles, stored, strict=True):
        if outcome.outcome in (StoreOutcome.NEW, StoreOutcome.DUPLICATE):
            added[article.feed_id] = added.get(article.feed_id, 0) + 1
    for feed_id, count in added.items():
        session.execute(update(FeedRow).where(FeedRow.id == feed_id)
                        .values(article_count=FeedRow.article_count + count)
                        .execution_options(synchronize_session=False))


# Built once: constructing and cache-keying an ORM UPDATE cost more than running it (~0.4 ms
# of the ~1 ms a 304's state write took). The names differ from the columns' as SET requires.
_FEEDS = cast(Table, FeedRow.__table__)  # a Core UPDATE: the ORM's would take executemany as bulk by key
_STATE_UPDATE = update(_FEEDS).where(_FEEDS.c.id == bindparam("b_id")).values(
    url=bindparam("b_url"), status=bindparam("b_status"), etag=bindparam("b_etag"),
    last_modified=bindparam("b_last_modified"), last_success_at=bindparam("b_last_success"),
    last_error=bindparam("b_last_error"), last_error_at=bindparam("b_last_error_at"),
    consecutive_errors=bindparam("b_errors"), next_poll_at=bindparam("b_next_poll"),
)


def _update_states(session: Session, states: Sequence[FeedState]) -> None:
    """Write feeds' polling states with one UPDATE statement (executemany), rows not loaded."""
    params = [
        {"b_id": s.feed_id, "b_url": s.url, "b_status": s.status.value, "b_etag": s.etag,
         "b_last_modified": s.last_modified, "b_last_success": s.last_success,
         "b_last_error": s.last_error, "b_last_error_at": s.last_error_at,
         "b_errors": s.consecutive_errors, "b_next_poll": s.next_poll}
        for s in states
    ]
    updated = session.connection().execute(_STATE_UPDATE, params).rowcount
    # One feed's state written for a feed that is not stored is a caller's mistake. In a batch
    # (rows over executemany are not countable on every driver) a feed removed meanwhile has
    # nothing left to record, and must not undo the others' states.
    if len(params) == 1 and updated == 0:
        raise NotFoundError("feed", states[0].feed_id, operation="save feed state",
                            hint="sync the configuration first")


def _new_feed_row(feed: Feed, now: datetime) -> FeedRow:
    return FeedRow(
        id=feed.id, config_url=feed.url, url=feed.url, name=feed.name,
        status=FeedStatus.NEW.value, consecutive_errors=0, created_at=now, article_count=0,
    )


def _reset_feed_row(row: FeedRow, feed: Feed) -> None:
    """The user pointed the feed elsewhere: forget what we knew about the old URL."""
    row.config_url = row.url = feed.url
    row.name = feed.name
    row.status = FeedStatus.NEW.value
    row.etag = row.last_modified = row.last_error = None
    row.last_error_at = row.next_poll_at = row.last_success_at = None
    row.consecutive_errors = 0


def _feed_state(row: FeedRow) -> FeedState:
    return FeedState(
        feed_id=row.id, url=row.url, status=FeedStatus(row.status), etag=row.etag,
        last_modified=row.last_modified, last_success=row.last_success_at,
        last_error=row.last_error, last_error_at=row.last_error_at,
        consecutive_errors=row.consecutive_errors, next_poll=row.next_poll_at,
    )


def _report(feed_id: str, row: FeedRow | None, feed: Feed | None, count: int) -> FeedReport:
    state = _feed_state(row) if row else FeedState(feed_id, feed.url if feed else "")
    status = shown_status(state.status, feed)
    return FeedReport(
        id=feed_id, url=state.url, status=status, last_success=state.last_success,
        last_error=state.last_error, consecutive_errors=state.consecutive_errors,
        next_poll=state.next_poll if status not in {FeedStatus.REMOVED, FeedStatus.DISABLED} else None,
        article_count=count,
    )


def shown_status(stored: FeedStatus, feed: Feed | None) -> FeedStatus:
    """A feed's status as reported: removed and disabled come from the configuration, not the table."""
    if feed is None:
        return FeedStatus.REMOVED
    if not feed.enabled:
        return FeedStatus.DISABLED
    return stored
