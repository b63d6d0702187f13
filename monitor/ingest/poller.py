"""poll_feed(): fetch -> parse -> de-duplicate and store; the one path every poll takes."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime

from alerts.outbox_rules import copy_entries
from monitor.errors import FetchError, ParseError, StorageError
from monitor.ingest.backoff import next_poll_after_failure, next_poll_after_success
from monitor.ingest.fetch import Fetcher
from monitor.ingest.parse import parse_feed
from monitor.types import (
    Article,
    CopyRules,
    FeedState,
    FeedStatus,
    FetchResult,
    PollResult,
    StoredArticle,
    StoreOutcome,
    utc_now,
)
from monitor.types import Feed as FeedConfig
from storage.repo import Repository

log = logging.getLogger("monitor.ingest.poller")

# New articles stored from one document; see Pipeline.max_items.
DEFAULT_MAX_ITEMS = 1000
# 304 states held back in a round before they are written in one transaction; see _RoundStates.
STATE_BATCH = 250


class _RoundStates:
    """The states of a round's 304s that change only `last_success` and `next_poll`.

    Written `STATE_BATCH` at a time and at the round's end, in one transaction each, instead
    of one transaction per feed (a third of a 304's cost). A crash loses at most these
    timestamps: the stored state stays valid (same validators, same status), and a healthy
    feed does not wait for its next_poll, so the loss is at most one poll made again.
    """

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._lock = threading.Lock()
        self._held: list[FeedState] = []

    def hold(self, state: FeedState) -> None:
        with self._lock:
            self._held.append(state)
            full = len(self._held) >= STATE_BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        if not held:
            return
        try:
            self._repo.save_feed_states(held)
        except StorageError as exc:  # the results stand; these feeds only keep older timestamps
            log.error("feed states not stored", extra={"feeds": len(held), "error": str(exc)})


@dataclass
class Pipeline:
    """The stages wired together; one instance serves every feed and thread."""

    repo: Repository
    fetcher: Fetcher
    max_backoff: float = 86400.0
    clock: Callable[[], datetime] = utc_now
    rng: random.Random = field(default_factory=random.Random)
    copies: CopyRules = copy_entries  # replies under earlier alerts, written as copies are stored
    # New articles stored per poll, newest first; the rest wait for the next poll. One feed
    # dumping its archive must not hold the database and the embedder for hours.
    max_items: int = DEFAULT_MAX_ITEMS

    def poll_feed(self, feed: FeedConfig, *, force: bool = False) -> PollResult:
        """Poll one feed unless it is gone or (without `force`) backing off."""
        return self._poll_known(feed, self.repo.feed_state(feed.id), force)

    def _poll_known(
        self, feed: FeedConfig, state: FeedState | None, force: bool, round_: _RoundStates | None = None
    ) -> PollResult:
        """poll_feed with the feed's state already read (None: never synced); `round_` when
        poll_many polls it."""
        if state is None:
            self.repo.sync_feeds([feed])
            state = FeedState(feed.id, feed.url)
        if state.status is FeedStatus.GONE:
            return PollResult(feed.id, state.url, FeedStatus.GONE, error=state.last_error)
        if not force and backing_off(state, self.clock()):
            return PollResult(feed.id, state.url, state.status, error="backing off")
        try:
            return self._poll(feed, state, round_)
        except Exception as exc:
            return self._crashed(feed, state, exc)

    def _crashed(self, feed: FeedConfig, state: FeedState, exc: Exception) -> PollResult:
        """A bug or a database error: recorded on the feed if possible, so that it backs off
        and one feed never stops a batch."""
        if isinstance(exc, StorageError):  # the database's own words; no traceback to add
            reason = f"storage error: {exc}"
            log.error("poll could not be stored", extra={"feed": feed.id, "url": state.url, "error": reason})
        else:
            log.exception("poll crashed", extra={"feed": feed.id, "url": state.url})
            reason = f"internal error: {type(exc).__name__}: {exc}"
        try:
            return self._failed(feed, state, reason, None, None)
        except Exception:
            return PollResult(feed.id, state.url, FeedStatus.ERROR, error=reason)

    def poll_many(
        self,
        feeds: Sequence[FeedConfig],
        workers: int,
        on_result: Callable[[PollResult], None] | None = None,
    ) -> list[PollResult]:
        """Poll feeds concurrently (each once, now); a failing feed never stops the others.

        A 304 is logged at DEBUG here, and the round ends with one INFO line of counts.
        """
        results: list[PollResult] = []
        started = time.monotonic()
        states = self.repo.feed_states([feed.id for feed in feeds])  # one query, not one a feed
        round_ = _RoundStates(self.repo)
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="poll") as pool:
                futures = [pool.submit(self._poll_known, feed, states.get(feed.id), True, round_)
                           for feed in feeds]
                for future in as_completed(futures):
                    results.append(future.result())
                    if on_result:
                        on_result(results[-1])
        finally:
            round_.flush()
        _log_round(results, time.monotonic() - started)
        return sorted(results, key=lambda result: result.feed_id)

    def _poll(self, feed: FeedConfig, state: FeedState, round_: _RoundStates | None) -> PollResult:
        try:
            doc = self.fetcher.fetch(
                state.url, etag=state.etag, last_modified=state.last_modified, feed_id=feed.id
            )
        except FetchError as exc:
            return self._failed(feed, state, exc.reason, exc.status, exc.retry_after)
        if doc.not_modified:
            return self._not_modified(feed, state, doc, round_)
        try:
            parsed = parse_feed(doc, feed)
        except ParseError as exc:
            # Not `_moved`: a redirect to something that is not a feed must not become its URL.
            return self._failed(feed, state, exc.reason, doc.status, None)
        articles, left = self._capped(feed.id, parsed.articles)
        success = self._succeeded(feed, state, doc)
        if left:  # without validators the next poll fetches the document again and gets the rest
            success = replace(success, etag=None, last_modified=None)
        stored = self.repo.record_success(success, articles, self.copies)
        warnings = [parsed.warning, f"{left} new item(s) over max_items_per_poll left for the next poll"
                    if left else None]
        warning = "; ".join(filter(None, warnings)) or None
        result = _summarise(feed.id, success.url, doc.status, stored, warning)
        _log_result(result)
        return result

    def _capped(self, feed_id: str, articles: tuple[Article, ...]) -> tuple[list[Article], int]:
        """The articles to store now (at most `max_items` new ones, the newest), and how many wait."""
        if len(articles) <= self.max_items:
            return list(articles), 0
        known = self.repo.stored_guids(feed_id, [a.guid_hash for a in articles])
        new = [a for a in articles if a.guid_hash not in known]
        if len(new) <= self.max_items:
            return list(articles), 0
        newest = sorted(new, key=lambda a: a.published, reverse=True)[: self.max_items]
        kept = {a.guid_hash for a in newest} | known
        return [a for a in articles if a.guid_hash in kept], len(new) - self.max_items

    def _succeeded(self, feed: FeedConfig, state: FeedState, doc: FetchResult) -> FeedState:
        """The feed's state after an answer we could use (200 or 304)."""
        now = self.clock()
        return replace(
            _moved(state, doc), status=FeedStatus.OK, etag=doc.etag,
            last_modified=doc.last_modified, last_success=now, consecutive_errors=0,
            next_poll=next_poll_after_success(now, feed.interval),
        )

    def _not_modified(
        self, feed: FeedConfig, state: FeedState, doc: FetchResult, round_: _RoundStates | None
    ) -> PollResult:
        new_state = self._succeeded(feed, state, doc)
        result = PollResult(feed.id, state.url, FeedStatus.OK, http_status=304)
        if round_ is not None and _only_times_changed(state, new_state):
            round_.hold(new_state)
            log.debug("poll ok", extra=_fields(result))
            return result
        self.repo.save_feed_state(new_state)
        _log_result(result)
        return result

    def _failed(
        self,
        feed: FeedConfig,
        state: FeedState,
        reason: str,
        http_status: int | None,
        retry_after: float | None,
    ) -> PollResult:
        now = self.clock()
        errors = state.consecutive_errors + 1
        gone = http_status == 410
        failed = replace(
            state, status=FeedStatus.GONE if gone else FeedStatus.ERROR, last_error=reason,
            last_error_at=now, consecutive_errors=errors,
            next_poll=None if gone else next_poll_after_failure(
                now, feed.interval, errors, self.max_backoff, retry_after, self.rng
            ),
        )
        self.repo.save_feed_state(failed)
        result = PollResult(feed.id, state.url, failed.status, http_status=http_status, error=reason)
        _log_result(result, next_poll=failed.next_poll)
        return result


def backing_off(state: FeedState, now: datetime) -> bool:
    """Whether a failing feed must wait for its next_poll (the scheduler asks too, in celery mode)."""
    # Only a failing feed waits: a healthy one follows its job's schedule, whose jitter may
    # fire a little before next_poll.
    return state.status is FeedStatus.ERROR and state.next_poll is not None and state.next_poll > now


def _only_times_changed(old: FeedState, new: FeedState) -> bool:
    """Whether `new` differs from `old` in `last_success` and `next_poll` alone."""
    return replace(new, last_success=old.last_success, next_poll=old.next_poll) == old


def _moved(state: FeedState, doc: FetchResult) -> FeedState:
    """Follow a permanent redirect for good; temporary ones leave the stored URL alone."""
    return replace(state, url=doc.permanent_url) if doc.permanent_url else state


def _summarise(
    feed_id: str, url: str, http_status: int, stored: Sequence[StoredArticle], warning: str | None
) -> PollResult:
    def count(outcome: StoreOutcome) -> int:
        return sum(1 for s in stored if s.outcome is outcome)

    return PollResult(
        feed_id, url, FeedStatus.OK, http_status=http_status, new=count(StoreOutcome.NEW),
        updated=count(StoreOutcome.UPDATED), duplicates=count(StoreOutcome.DUPLICATE),
        unchanged=count(StoreOutcome.UNCHANGED), warning=warning,
        new_article_ids=tuple(s.id for s in stored if s.outcome is StoreOutcome.NEW and s.id is not None),
    )


def _fields(result: PollResult) -> dict[str, object]:
    return {"feed": result.feed_id, "url": result.url, "http_status": result.http_status}


def _log_result(result: PollResult, next_poll: datetime | None = None) -> None:
    fields = _fields(result)
    if result.status is FeedStatus.GONE:
        log.warning("feed gone; polling stopped", extra={**fields, "reason": result.error})
    elif result.error:
        retry = next_poll.isoformat(timespec="seconds") if next_poll else None
        log.warning("poll failed", extra={**fields, "error": result.error, "next_poll": retry})
    else:
        counts = {"new": result.new, "updated": result.updated, "duplicates": result.duplicates}
        log.info("poll ok", extra={**fields, **counts})
        if result.warning:  # once per poll: ill-formed, repaired items, bad dates, items left
            log.warning("feed accepted with problems", extra={**fields, "warning": result.warning})


def _log_round(results: Sequence[PollResult], seconds: float) -> None:
    """One line for a whole round: the 304s, logged at DEBUG one by one, are counted here."""
    log.info("poll round done", extra={
        "feeds": len(results), "not_modified": sum(1 for r in results if r.http_status == 304),
        "failed": sum(1 for r in results if r.error), "new": sum(r.new for r in results),
        "seconds": round(seconds, 2),
    })
