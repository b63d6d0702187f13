"""What a click on an alert button does, after Slack has had its answer.

Slack wants an answer within 3 seconds, so the HTTP endpoint and the Socket Mode listener
only check the request and `submit` the click; one worker thread then, in order: checks the
user may label (else a private refusal, and nothing is stored), records the label or mute
through monitor.feedback (once, however often the button is pressed), and redraws the alert
in place to show who labelled it and how, with an Undo.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.card import alert_card, mute_until
from alerts.message import SlackMessage
from alerts.slack import SlackError
from alerts.slack_app import SlackResponder
from monitor.errors import MonitorError
from monitor.feedback.service import FeedbackService
from monitor.types import Action, AlertKind, CardEntry, CardLabel, Click, Clock, utc_now
from storage.outbox import Outbox

log = logging.getLogger("monitor.service.clicks")

GROUP_TTL = 300.0  # seconds a user group's members are trusted before they are read again
REFUSAL = ("Only the analysts this monitor lists may label alerts; ask whoever runs it "
           "to add you to `[alerts.slack] allowed_users` or its user group.")


@dataclass
class Access:
    """Who may label: listed user ids, members of one user group; nobody listed means anyone."""

    users: frozenset[str] = frozenset()
    group: str | None = None
    members: Callable[[str], frozenset[str]] | None = None  # usergroups.users.list
    ttl: float = GROUP_TTL
    _cache: tuple[float, frozenset[str]] | None = field(default=None, init=False, repr=False)

    def allows(self, user_id: str) -> bool:
        if not self.users and not self.group:
            return True
        if user_id in self.users:
            return True
        return self.group is not None and user_id in self._group_members()

    def _group_members(self) -> frozenset[str]:
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] < self.ttl:
            return self._cache[1]
        if self.members is None or self.group is None:
            return frozenset()
        try:
            found = self.members(self.group)
        except SlackError as exc:
            # Fail closed, but keep a list that was read before: Slack being down for a minute
            # should not lock every analyst out.
            log.warning("user group not readable", extra={"group": self.group, "error": exc.error})
            return self._cache[1] if self._cache else frozenset()
        self._cache = (now, found)
        return found


class ClickService:
    """Takes checked clicks (`submit`) and acts on them on a worker thread, in arrival order."""

    def __init__(self, feedback: FeedbackService, outbox: Outbox, responder: SlackResponder,
                 access: Access, clock: Clock = utc_now) -> None:
        self.feedback = feedback
        self.outbox = outbox
        self.responder = responder
        self.access = access
        self._clock = clock
        self._queue: queue.Queue[Click | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def known(self, alert_id: int) -> bool:
        """Whether `alert_id` is an alert (not a reply, summary or test message) in the outbox."""
        item = self.outbox.item(alert_id)
        return item is not None and item.kind is AlertKind.ALERT

    def submit(self, click: Click) -> None:
        self._queue.put(click)

    def start(self) -> ClickService:
        self._thread = threading.Thread(target=self._work, name="slack-clicks", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the clicks already taken, then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def idle(self) -> bool:
        """Whether every submitted click has been handled (for tests and shutdown)."""
        return self._queue.unfinished_tasks == 0

    def _work(self) -> None:
        while (click := self._queue.get()) is not None:
            try:
                self.handle(click)
            except Exception:  # one bad click must not stop the worker; the log has the traceback
                log.exception("click not handled", extra={"alert": click.alert_id,
                                                          "action": click.action.value})
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def handle(self, click: Click) -> None:
        """Permission, then the label or mute, then the redraw."""
        fields = {"alert": click.alert_id, "action": click.action.value, "user": click.user_id}
        if not self.access.allows(click.user_id):
            log.warning("click refused: user may not label", extra=fields)
            self._tell(click, REFUSAL)
            return
        try:
            changed = self._apply(click)
        except MonitorError as exc:
            log.warning("click refused", extra={**fields, "error": str(exc)})
            self._tell(click, f"Not recorded: {exc}")
            return
        log.info("click recorded" if changed else "click repeated the current state", extra=fields)
        self.redraw(click.alert_id, click)

    def _apply(self, click: Click) -> bool:
        """Store what the click asks for; whether anything changed."""
        user, at = click.user_id, self._clock()
        if click.action in (Action.CONFIRM, Action.FALSE_ALARM):
            return self.feedback.record_label(click.alert_id, click.action.value, user, at=at,
                                              source="slack").changed
        outcome = self.feedback.outcome(click.alert_id)
        if click.action is Action.UNDO:
            if outcome.label is not None:
                return self.feedback.record_label(click.alert_id, "undo", user, at=at, source="slack").changed
            return self.feedback.unmute_narrative(outcome.narrative_id)
        seconds = click.mute_seconds if click.action is Action.MUTE_FOR else None
        until = mute_until(at, seconds) if seconds else None
        self.feedback.mute_narrative(outcome.narrative_id, until, user)
        return True

    def redraw(self, alert_id: int, click: Click | None = None) -> None:
        """Show the current labels on the message that carries `alert_id`."""
        group = self.outbox.message_alerts(alert_id)
        if not group:
            return
        mutes = {m.narrative_id: m for m in self.feedback.mutes()}
        entries = []
        for item in group:
            content = self.outbox.content(item.article_id or 0, item.narrative_id or "")
            outcome = self.feedback.outcome(item.id)
            label = None
            if outcome.label is not None and outcome.at is not None:
                label = CardLabel(outcome.label.value, outcome.user or "", outcome.at)
            elif (mute := mutes.get(outcome.narrative_id)) is not None:
                label = CardLabel("muted", mute.by, mute.at, mute.until)
            entries.append(CardEntry(item.id, content, label))
        ts = group[0].ts or (click.message_ts if click else None)
        channel = (click.channel_id if click else None) or group[0].channel
        self._replace(channel, ts, alert_card(entries), click)

    def _replace(self, channel: str, ts: str | None, message: SlackMessage, click: Click | None) -> None:
        try:
            if self.responder.has_token and ts:
                self.responder.update(channel, ts, message)
            elif click is not None and click.response_url:
                self.responder.respond(click.response_url, message)
            else:
                log.warning("alert not redrawn: no bot token and no response_url", extra={"channel": channel})
        except SlackError as exc:
            log.warning("alert not redrawn; the label is stored",
                        extra={"channel": channel, "error": exc.error})

    def _tell(self, click: Click, text: str) -> None:
        """A message only the clicking user sees."""
        try:
            if self.responder.has_token and click.channel_id:
                self.responder.ephemeral(click.channel_id, click.user_id, text)
            elif click.response_url:
                self.responder.respond(click.response_url, SlackMessage(text, ()), ephemeral=True)
        except SlackError as exc:
            log.warning("refusal not shown to the user", extra={"user": click.user_id, "error": exc.error})

