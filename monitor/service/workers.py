"""Distributed mode: the Celery app, the two tasks workers run, and the dispatcher of `monitor run`.

    monitor run (scheduler)  --poll task (queue fetch)-->   monitor worker: Pipeline.poll_feed
                             --match task (queue embed)-->  monitor worker: MatchStage.run_pending
                             --stories task (queue embed)-> monitor worker: StoryUpdater.run
    monitor run delivers the outbox to Slack, sends the digest and prunes old rows itself
    ([storage] retention: monitor/service/retention.py); workers never prune.

Delivery guarantees come from the storage, not from the queue: a task is acknowledged only
when it is done (late acknowledgement), so a killed worker's tasks run again elsewhere, and
running one twice stores nothing twice (unique keys on articles, matches and alerts). A
PostgreSQL advisory lock per feed keeps two workers from polling one feed at once, and one
more lock makes matching a single pass at a time across the cluster.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.config.engine import EMBED_QUEUE, FETCH_QUEUE, EngineSettings, shown_broker
from monitor.flow import Flow
from monitor.ingest.poller import backing_off
from monitor.matching.stage import MatchStage
from monitor.types import Feed, FeedState, FeedStatus, utc_now
from storage.locks import open_lock_engine, try_lock
from storage.repo import Repository

log = logging.getLogger("monitor.service.workers")

POLL_TASK = "monitor.poll_feed"
MATCH_TASK = "monitor.match_pending"
MATCH_LOCK = "monitor:match"
STORIES_TASK = "monitor.update_stories"
STORIES_LOCK = "monitor:stories"
# A worker asks for matching at most this often: a pass takes every pending article, so one
# request per poll would only queue passes with nothing left to do. Articles stored just
# after a pass are picked up by the next request or by the periodic one (embed_interval).
MATCH_TRIGGER_GAP = 1.0  # seconds


def celery_app(engine: EngineSettings) -> Any:
    """A Celery app on the configured broker; tasks are registered only in workers."""
    app = Celery("monitor", broker=engine.broker_url, set_as_current=False)
    app.conf.update(
        # Acknowledge when done, not when received: a killed worker's tasks are redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Reserve one task per thread, so a dead worker strands as few tasks as possible.
        worker_prefetch_multiplier=1,
        task_routes={POLL_TASK: {"queue": FETCH_QUEUE}, MATCH_TASK: {"queue": EMBED_QUEUE},
                     STORIES_TASK: {"queue": EMBED_QUEUE}},
        task_default_queue=FETCH_QUEUE,
        task_ignore_result=True,  # outcomes live in the database; no result backend to run
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=_transport_options(engine.visibility_timeout),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,  # keep the monitor's log format
        worker_redirect_stdouts=False,
        enable_utc=True,
    )
    return app


def _transport_options(visibility_timeout: float) -> dict[str, Any]:
    # Redis redelivers an unacknowledged task after visibility_timeout, but only when a worker
    # sweeps for them: by default every 10 s x 10 calls, far too rare for a short timeout.
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(10, int(visibility_timeout // 4))),
        "unacked_restore_throttle": 1,
    }


def feed_message(feed: Feed) -> dict[str, Any]:
    """A feed as a JSON task argument: the worker polls what the scheduler saw, new feeds too."""
    return {**asdict(feed), "tags": list(feed.tags)}


def feed_from_message(data: dict[str, Any]) -> Feed:
    return Feed(**{**data, "tags": tuple(data.get("tags", ()))})


class Dispatcher:
    """`monitor run` in celery mode: enqueues polls and matching instead of running them."""

    def __init__(self, app: Any, repo: Repository, match_every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.repo = repo
        self._match_expires = match_expiry(match_every)
        self._clock = clock
        self._sent: dict[str, tuple[float, tuple[object, ...]]] = {}  # feed -> (sent at, state then)
        self._lock = threading.Lock()

    def enqueue_poll(self, feed: Feed) -> bool:
        """Send one poll task, unless the poll would do nothing or the last task is still queued."""
        state = self.repo.feed_state(feed.id)
        if state is not None and (state.status is FeedStatus.GONE or backing_off(state, utc_now())):
            return False  # what the worker would find too; skipping it keeps the queue short
        seen = _fingerprint(state)
        now = self._clock()
        with self._lock:
            sent = self._sent.get(feed.id)
            # Every poll that runs changes the state, so unchanged means not run yet. The task
            # expires after one interval, so a lost one only delays the feed by that much.
            if sent is not None and sent[1] == seen and now - sent[0] < feed.interval:
                log.info("poll still queued; not enqueued again", extra={"feed": feed.id})
                return False
        self.app.send_task(POLL_TASK, args=[feed_message(feed)], queue=FETCH_QUEUE,
                           expires=float(feed.interval))
        with self._lock:
            self._sent[feed.id] = (now, seen)
        return True

    def enqueue_match(self) -> None:
        """Ask a worker on queue embed to match what is pending (a no-op pass is cheap)."""
        send_match(self.app, self._match_expires)

    def enqueue_stories(self) -> None:
        """Ask a worker on queue embed to update the stories (every [stories] interval)."""
        self.app.send_task(STORIES_TASK, queue=EMBED_QUEUE, expires=self._match_expires)

    def close(self) -> None:
        self.app.close()


def send_match(app: Any, expires: float) -> None:
    app.send_task(MATCH_TASK, queue=EMBED_QUEUE, expires=expires)


def match_expiry(embed_interval: float) -> float:
    """A match request still queued after this is dropped: any later pass does the same work."""
    return max(2 * embed_interval, 30.0)


def _fingerprint(state: FeedState | None) -> tuple[object, ...]:
    """What every poll that runs changes: its time of success or of failure."""
    if state is None:
        return ()
    return (state.last_success, state.last_error_at, state.consecutive_errors, state.status)


class WorkerRuntime:
    """What a worker's tasks share: the settings, the database, a pipeline, the matching stage."""

    def __init__(self, settings: Settings, engine: Engine, app: Any, concurrency: int) -> None:
        self.settings = settings
        self.engine = engine
        self.app = app
        self.locks = open_lock_engine(settings.database_url, concurrency + 2)  # + match and stories locks
        self.flow = Flow(settings, engine, sync_feeds=False)
        self._match_expires = match_expiry(settings.file.matching.embed_interval)
        self._last_trigger = -MATCH_TRIGGER_GAP
        self._trigger_lock = threading.Lock()

    def poll(self, data: dict[str, Any]) -> dict[str, Any]:
        """The poll task: one feed through Pipeline.poll_feed, never two workers on one feed."""
        feed = feed_from_message(data)
        with try_lock(self.locks, f"monitor:poll:{feed.id}") as taken:
            if not taken:
                # A duplicate, or a redelivery of a task another worker is still running.
                log.info("poll skipped: another worker is polling this feed", extra={"feed": feed.id})
                return {"feed": feed.id, "skipped": True}
            result = self.flow.poll_feed(feed)
        if (result.new or result.updated) and self._trigger_due():
            send_match(self.app, self._match_expires)
        return {"feed": feed.id, "status": result.status.value, "new": result.new,
                "updated": result.updated, "error": result.error}

    def _trigger_due(self) -> bool:
        with self._trigger_lock:
            now = time.monotonic()
            if now - self._last_trigger < MATCH_TRIGGER_GAP:
                return False
            self._last_trigger = now
            return True

    def match(self) -> dict[str, Any]:
        """The match task: embed and match every pending article, one pass in the cluster at a time."""
        with try_lock(self.locks, MATCH_LOCK) as taken:
            if not taken:
                # The pass in progress, or the next periodic trigger, picks these articles up.
                log.debug("match skipped: a pass is running on another worker")
                return {"skipped": True}
            run = self.flow.match()
        return {"articles": run.articles, "new_matches": len(run.new_matches)}

    def stories(self) -> dict[str, Any]:
        """The stories task: one update at a time in the cluster (the database lock orders them too)."""
        with try_lock(self.locks, STORIES_LOCK) as taken:
            if not taken:
                return {"skipped": True}
            run = self.flow.stories()
        return {"stories": run.stories if run else 0, "emerging": run.emerging if run else 0}

    def stage(self) -> MatchStage:
        """Built on first use under the match lock: a fetch-only worker never loads the model."""
        return self.flow.stage

    def close(self) -> None:
        self.flow.close()
        self.locks.dispose()


def register_tasks(app: Any, runtime: WorkerRuntime) -> None:
    app.task(name=POLL_TASK)(runtime.poll)
    app.task(name=MATCH_TASK)(runtime.match)
    app.task(name=STORIES_TASK)(runtime.stories)


def run_worker(app: Any, queues: list[str], concurrency: int) -> int:
    """Consume `queues` with `concurrency` threads until SIGTERM/SIGINT; returns the exit code."""
    # Threads, not processes: the fetcher's per-host politeness and the embedding model are
    # shared by every task of the worker, and the work is I/O or releases the GIL.
    worker = app.Worker(
        queues=queues, concurrency=concurrency, pool="threads", quiet=True,
        hostname=f"monitor-{os.getpid()}@{socket.gethostname()}",
        without_mingle=True, without_gossip=True,  # no revokes or events to share between workers
        loglevel=logging.getLevelName(logging.getLogger().level),
    )
    # Celery logs every task received and done with its arguments: noise beside "poll ok".
    for noisy in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    log.info("worker starting", extra={"queues": ",".join(queues), "concurrency": concurrency,
                                       "broker": shown_broker(app.conf.broker_url)})
    worker.start()
    return int(worker.exitcode or 0)
