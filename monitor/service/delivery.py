"""Delivering the outbox to Slack: paced per channel, retried, recorded once acknowledged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from alerts.card import alert_card
from alerts.message import SlackMessage, flood_summary, story_message, syndication_reply, test_message
from alerts.retry import backoff_delay
from alerts.slack import SlackError, SlackSender
from monitor.types import AlertKind, AlertStatus, CardEntry, OutboxItem, utc_now
from storage.outbox import Outbox

log = logging.getLogger("monitor.service.delivery")

CHANNEL_GAP = 1.0  # seconds between two messages to one channel: Slack's limit for chat.postMessage
MAX_RETRY_DELAY = 3600.0
PARENT_WAIT = 5.0  # a reply waits this long for its parent alert to be sent first



@dataclass(frozen=True)
class Built:
    """A message to post, its thread, and the other items it settles once acknowledged."""

    message: SlackMessage
    thread_ts: str | None = None
    folded: tuple[int, ...] = ()  # replies and held alerts it lists: merged
    carried: tuple[int, ...] = ()  # the article's other alerts shown in it: sent, with its ts


@dataclass(frozen=True)
class DeliveryRun:
    """What one pass over the outbox did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0  # due, but their channel was busy: sent on a later pass


class Deliverer:
    """Sends due outbox items; one instance per process, called from one thread at a time."""

    def __init__(
        self,
        outbox: Outbox,
        sender: SlackSender,
        *,
        gap: float = CHANNEL_GAP,
        clock: Callable[[], datetime] = utc_now,
        flood_window: float = 3600.0,
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.gap = gap
        self._clock = clock
        self._flood_window = flood_window
        self._ready_at: dict[str, float] = {}  # channel -> monotonic time it may be posted to
        self._lock = threading.Lock()

    def deliver_due(self, limit: int = 200) -> DeliveryRun:
        """One pass: send every due item whose channel is free; never sleeps."""
        with self._lock:
            run = DeliveryRun()
            for item in self.outbox.due(limit):
                if self._ready_at.get(item.channel, 0.0) > time.monotonic():
                    run = replace(run, deferred=run.deferred + 1)
                    continue
                # Another process (`alerts deliver` beside `run`) may be delivering too.
                if self.outbox.claim(item.id):
                    run = self._deliver(item, run)
            return run

    def flush(self, timeout: float = 120.0) -> DeliveryRun:
        """Deliver until nothing falls due before `timeout`, waiting out channel gaps and retries.

        Items due later (a flood summary waiting for its window to close) stay pending.
        """
        total = DeliveryRun()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.deliver_due()
            total = DeliveryRun(total.sent + run.sent, total.retried + run.retried,
                                total.failed + run.failed, run.deferred)
            due = self.outbox.next_due()
            if due is None:
                return total
            wait = (due - self._clock()).total_seconds()
            if wait > deadline - time.monotonic():
                return total
            time.sleep(min(max(0.05, wait, self._next_ready() - time.monotonic()), 1.0))
        return total

    def _next_ready(self) -> float:
        return min(self._ready_at.values(), default=time.monotonic())

    def _deliver(self, item: OutboxItem, run: DeliveryRun) -> DeliveryRun:
        built = self._message(item)
        if built is None:
            return run
        self._ready_at[item.channel] = time.monotonic() + self.gap
        try:
            ts = self.sender.post(item.channel, built.message, thread_ts=built.thread_ts)
        except SlackError as exc:
            return self._failed(item, exc, run, built.carried)
        self.outbox.settle(item.id, AlertStatus.SENT, ts=ts)
        if built.carried:  # one message, several alerts: each keeps its row (labels are per alert)
            self.outbox.settle_many(built.carried, AlertStatus.SENT, ts=ts)
        if built.folded:  # only once the message that lists them is acknowledged
            self.outbox.settle_many(built.folded, AlertStatus.MERGED)
        log.info("alert sent", extra={"alert": item.id, "kind": item.kind.value, "channel": item.channel,
                                      "narrative": item.narrative_id, "ts": ts,
                                      "with_alerts": list(built.carried)})
        return replace(run, sent=run.sent + 1)

    def _message(self, item: OutboxItem) -> Built | None:
        """The message, its thread and the items it stands for; None when settled or waiting."""
        if item.kind is AlertKind.ALERT:
            return self._alert(item)
        if item.kind is AlertKind.REPLY:
            return self._reply(item)
        if item.kind is AlertKind.SUMMARY:
            return self._summary(item)
        if item.kind is AlertKind.STORY:
            return self._story(item)
        return Built(test_message())

    def _story(self, item: OutboxItem) -> Built | None:
        story = self.outbox.story(item.story_id) if item.story_id is not None else None
        if story is None:
            self.outbox.settle(item.id, AlertStatus.FAILED, error="story not found")
            return None
        return Built(story_message(story))

    def _alert(self, item: OutboxItem) -> Built:
        """One message for the article's due alerts on this channel (claimed here), best first."""
        carried = [s for s in self.outbox.siblings(item) if self.outbox.claim(s.id)]
        group = [item, *carried]
        entries = [CardEntry(i.id, self.outbox.content(i.article_id or 0, i.narrative_id or ""))
                   for i in group]
        folded: list[int] = []
        if not self.sender.supports_threads:
            # A webhook cannot thread: replies that are waiting are counted in the alert instead.
            replies = [r for i in group for r in self.outbox.replies(i.id) if r.status is AlertStatus.PENDING]
            outlets = tuple(dict.fromkeys(self.outbox.outlet(r.feed_id, r.article_id)[0] for r in replies))
            entries = [replace(e, content=replace(e.content, also_published_by=outlets)) for e in entries]
            folded = [r.id for r in replies]
        return Built(alert_card(entries), None, tuple(folded), tuple(s.id for s in carried))

    def _reply(self, item: OutboxItem) -> Built | None:
        parent = self.outbox.item(item.parent_id) if item.parent_id is not None else None
        gone = (AlertStatus.FAILED, AlertStatus.MERGED, AlertStatus.SUPPRESSED)
        if parent is None or parent.status in gone or (
            not self.sender.supports_threads and parent.status is AlertStatus.SENT
        ):
            self.outbox.settle(item.id, AlertStatus.MERGED, error="no message to reply to")
            return None
        if parent.status is not AlertStatus.SENT:
            retry = self._clock() + timedelta(seconds=PARENT_WAIT)
            self.outbox.settle(item.id, AlertStatus.PENDING, error="waiting for its alert", retry_at=retry)
            return None
        if parent.ts and self.outbox.in_thread(item, parent.ts):  # the copy, told under a sibling alert
            self.outbox.settle(item.id, AlertStatus.MERGED, error="already in the thread")
            return None
        outlet, url = self.outbox.outlet(item.feed_id, item.article_id)
        return Built(syndication_reply([outlet], [url]), parent.ts)

    def _summary(self, item: OutboxItem) -> Built | None:
        held = self.outbox.held(item)
        if not held:
            self.outbox.settle(item.id, AlertStatus.MERGED, error="nothing was held")
            return None
        contents = [self.outbox.content(h.article_id or 0, h.narrative_id or "") for h in held]
        listed = [(c.article_title, c.article_url, c.outlet) for c in contents]
        window = f"{int(self._flood_window // 60)} minutes"
        summary = flood_summary(contents[0].narrative_title, listed, window)
        return Built(summary, None, tuple(h.id for h in held))

    def _failed(self, item: OutboxItem, exc: SlackError, run: DeliveryRun, carried: tuple[int, ...] = ()
                ) -> DeliveryRun:
        """Record the failure on the item and on the alerts its message carried (retried together)."""
        fields = {"alert": item.id, "channel": item.channel, "error": exc.error}
        if exc.retry_after is not None:
            self._ready_at[item.channel] = time.monotonic() + exc.retry_after
        if not exc.retryable:
            for item_id in (item.id, *carried):
                self.outbox.settle(item_id, AlertStatus.FAILED, error=exc.error)
            log.error("alert refused by Slack; not retried", extra=fields)
            return replace(run, failed=run.failed + 1)
        delay = exc.retry_after if exc.retry_after is not None else _backoff(item.attempts)
        retry = self._clock() + timedelta(seconds=delay)
        for item_id in (item.id, *carried):
            self.outbox.settle(item_id, AlertStatus.PENDING, error=exc.error, retry_at=retry)
        log.warning("alert delivery failed; will retry", extra={**fields, "retry_in": round(delay, 1)})
        return replace(run, retried=run.retried + 1)


def _backoff(attempts: int) -> float:
    """2, 4, 8 ... seconds with jitter, capped at an hour."""
    return backoff_delay(2.0, attempts, MAX_RETRY_DELAY)
