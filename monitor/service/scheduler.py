"""APScheduler wiring: one job per feed, and feeds.toml re-read while running."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.ingest.poller import Pipeline
from monitor.types import Feed

log = logging.getLogger("monitor.service.scheduler")

FIRST_POLL_SPREAD = 10.0  # seconds over which the first polls of many feeds are spread


def _job_id(feed_id: str) -> str:
    return f"feed:{feed_id}"


class FeedScheduler:
    """Keeps one APScheduler job per enabled feed in step with the configuration."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        load: Callable[[Path], Settings],
        rng: random.Random | None = None,
        periodic: Sequence[tuple[str, Callable[[], object], float | BaseTrigger]] = (),
        poll: Callable[[Feed], object] | None = None,
    ) -> None:
        self.settings = settings
        # What a due feed gets: polled here, or (celery engine) a task enqueued for a worker.
        self._poll_feed = poll or pipeline.poll_feed
        self._periodic = periodic  # (name, function, seconds or trigger): matching, delivery, digest
        self.pipeline = pipeline
        self._load = load
        self._rng = rng or random.Random()
        self._feeds: dict[str, Feed] = {}
        self._config_digest = _digest(settings.path)
        self._failed_digest: str | None = None  # an edit that could not be applied, retried
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(settings.monitor.max_concurrency)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )

    def start(self) -> None:
        """Schedule the configured feeds and start polling."""
        self._apply(self.settings)
        for name, function, every in self._periodic:
            # Embedding runs on its own schedule, so articles from many feeds share a batch;
            # delivery too, so a slow Slack never holds up a poll.
            trigger = every if isinstance(every, BaseTrigger) else IntervalTrigger(seconds=every)
            self._scheduler.add_job(_guarded, trigger, args=[name, function], id=name, name=name)
        self._scheduler.start()
        log.info("scheduler started", extra={"feeds": len(self._feeds)})

    def run_until(self, stop: threading.Event) -> None:
        """Re-read the configuration every reload_interval until `stop` is set."""
        while not stop.wait(self.settings.monitor.reload_interval):
            self.reload()

    @property
    def running(self) -> bool:
        """Whether jobs are being scheduled (for /healthz): false before start and after shutdown."""
        return bool(self._scheduler.running)

    def shutdown(self) -> None:
        """Stop scheduling and wait for the polls in flight to finish."""
        self._scheduler.shutdown(wait=True)
        log.info("scheduler stopped")

    def reload(self) -> bool:
        """Apply an edited feeds.toml; on any error it is reported and the last good one stays."""
        path = self.settings.path
        digest = _digest(path)
        if digest == self._config_digest:
            return False
        if digest is None:
            log.error("config file unreadable; keeping the last good configuration",
                      extra={"path": str(path)})
            return False
        self._config_digest = digest
        try:
            settings = self._load(path)
            self._warn_restart_only(settings)
            self._apply(settings)
        except ConfigError as exc:
            log.error("config edit rejected; keeping the last good configuration",
                      extra={"path": str(path), "problems": "; ".join(exc.problems)})
            return False
        except Exception as exc:
            # Not a validation problem (the database refused a value, a bug): `run` must outlive it.
            self._restore(digest, exc)
            return False
        self.settings = settings
        self._failed_digest = None
        return True

    def _warn_restart_only(self, settings: Settings) -> None:
        if settings.file.model_dump(exclude={"feeds"}) != self.settings.file.model_dump(exclude={"feeds"}):
            log.warning("only [feeds.*] changes apply while running; restart for the rest",
                        extra={"path": str(settings.path)})

    def _restore(self, digest: str, exc: Exception) -> None:
        """Report an edit that failed to apply, and put the last good feeds back."""
        fields = {"path": str(self.settings.path), "error": f"{type(exc).__name__}: {exc}"}
        if digest != self._failed_digest:
            log.exception("config edit rejected; keeping the last good configuration", extra=fields)
        else:  # the traceback was logged the first time
            log.warning("config edit still cannot be applied; keeping the last good configuration",
                        extra=fields)
        self._failed_digest = digest
        self._config_digest = None  # the same edit is tried again on the next reload: the cause may pass
        try:
            self._apply(self.settings)
        except Exception:
            log.exception("could not restore the last good feeds; retried on the next reload")

    def _apply(self, settings: Settings) -> None:
        feeds = settings.feeds()
        wanted = {feed.id: feed for feed in feeds if feed.enabled}
        # Triggers first: a value APScheduler cannot take fails here, before anything changed.
        changed = {feed_id: _trigger(feed) for feed_id, feed in wanted.items()
                   if (old := self._feeds.get(feed_id)) is None or (old.url, old.interval) != (
                       feed.url, feed.interval)}
        self.pipeline.repo.sync_feeds(feeds)
        # self._feeds follows each job, so that a failure part-way can be rolled back by _restore.
        for feed_id in set(self._feeds) - set(wanted):
            self._scheduler.remove_job(_job_id(feed_id))
            del self._feeds[feed_id]
            log.info("feed unscheduled", extra={"feed": feed_id})
        for feed_id, trigger in changed.items():
            self._schedule(wanted[feed_id], trigger, replace=feed_id in self._feeds)
            self._feeds[feed_id] = wanted[feed_id]
        self._feeds = dict(wanted)

    def _schedule(self, feed: Feed, trigger: IntervalTrigger, replace: bool) -> None:
        self._scheduler.add_job(
            self._poll,
            trigger,
            args=[feed.id],
            id=_job_id(feed.id),
            name=f"poll {feed.id}",
            next_run_time=self._first_run(feed),
            replace_existing=replace,
        )
        log.info("feed scheduled", extra={"feed": feed.id, "url": feed.url,
                                          "interval": feed.interval})

    def _first_run(self, feed: Feed) -> datetime:
        """When a (re)scheduled feed is first polled: when its backoff ends, or very soon."""
        now = self.pipeline.clock()
        state = self.pipeline.repo.feed_state(feed.id)
        if state and state.next_poll and state.next_poll > now and state.url == feed.url:
            return state.next_poll
        return now + timedelta(seconds=self._rng.uniform(0, min(FIRST_POLL_SPREAD, feed.interval)))

    def _poll(self, feed_id: str) -> None:
        feed = self._feeds.get(feed_id)
        if feed is None:  # unscheduled while this run was waiting for a worker
            return
        try:
            self._poll_feed(feed)
        except Exception:
            # The pipeline records feed failures itself; this is a bug or the database.
            log.exception("poll crashed", extra={"feed": feed.id, "url": feed.url})




def _trigger(feed: Feed) -> IntervalTrigger:
    return IntervalTrigger(seconds=feed.interval, jitter=min(feed.interval * 0.05, 60))


def _guarded(name: str, function: Callable[[], object]) -> None:
    try:
        function()
    except Exception:
        log.exception("periodic job crashed; retried on its next run", extra={"job": name})


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
