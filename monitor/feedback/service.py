"""Labels, mutes and learned examples: the one path Slack clicks and `monitor feedback` take.

    record_label(alert_id, action, user, ...) -> LabelOutcome
        confirm | false_alarm | undo on one alert (`alerts.id`). Safe to repeat: a double click
        or a retried delivery from Slack stores one label; a change of mind replaces the current
        label and keeps the old one as history; undo clears the current label.
    mute_narrative(narrative_id, until, user) -> Mute / unmute_narrative(narrative_id) -> bool

A confirmation (with `[matching] learn_from_confirmed`) keeps the match's evidence sentence as a
learned example of the narrative; it is embedded by the matching stage on its next pass. A
false alarm is read by the alert rules (alerts/): that article, its copies and articles with
the same lead no longer reach Slack on that narrative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from alerts.feedback_rules import held_by_false_alarm, held_by_mute
from monitor.errors import LabelError, NotFoundError
from monitor.types import (
    AlertTarget,
    Clock,
    Label,
    LabelAction,
    LabelChange,
    LabelRecord,
    LabelSource,
    Mute,
    utc_now,
)
from storage.feedback_repo import FeedbackStore
from storage.outbox import Outbox

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings

DEFAULT_MUTE = timedelta(hours=24)
MAX_MUTE = timedelta(days=366)
# Spellings accepted for an action: Slack's action_ids and the CLI's words.
_ACTIONS = {"confirm": LabelAction.CONFIRM, "confirmed": LabelAction.CONFIRM,
            "false_alarm": LabelAction.FALSE_ALARM, "false-alarm": LabelAction.FALSE_ALARM,
            "undo": LabelAction.UNDO}


@dataclass(frozen=True)
class LabelOutcome:
    """An alert's label after a request: what a Slack message redraws, what the CLI prints."""

    alert_id: int
    article_id: int
    narrative_id: str
    narrative_title: str
    label: Label | None  # the current label (None: unlabelled, or just undone)
    user: str | None  # who gave the current label
    at: datetime | None  # when
    note: str | None
    changed: bool  # False when the request repeated the current state (double click, retry)
    previous: Label | None  # the label before this request
    learned_example_id: int | None = None  # the learned example a confirmation added


def parse_alert_id(value: int | str) -> int:
    """An alert id from a button value or a command line; LabelError when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise LabelError("alert id", value, "not a number")
    if not 0 < number < 2**63:
        raise LabelError("alert id", value, "out of range")
    return number


def parse_action(value: LabelAction | str) -> LabelAction:
    """An action from `confirm`, `false_alarm` (or `false-alarm`) or `undo`."""
    if isinstance(value, LabelAction):
        return value
    action = _ACTIONS.get(value.strip().lower()) if isinstance(value, str) else None
    if action is None:
        raise LabelError("action", value, "expected confirm, false_alarm (false-alarm) or undo")
    return action


class FeedbackService:
    """Records labels and mutes; build it with `FeedbackService.from_settings(settings, engine)`."""

    def __init__(
        self, store: FeedbackStore, *, learn_from_confirmed: bool = True, clock: Clock = utc_now,
        outbox: Outbox | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox if outbox is not None else Outbox(store.engine)
        self.learn_from_confirmed = learn_from_confirmed
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> FeedbackService:
        """The service over a migrated database, with `[matching] learn_from_confirmed`."""
        return cls(FeedbackStore(engine), learn_from_confirmed=settings.file.matching.learn_from_confirmed)

    def record_label(
        self, alert_id: int | str, action: LabelAction | str, user: str, note: str | None = None,
        at: datetime | None = None, source: LabelSource | str = LabelSource.CLI,
    ) -> LabelOutcome:
        """Apply confirm, false_alarm or undo to an alert; raises LabelError or NotFoundError."""
        number, chosen = parse_alert_id(alert_id), parse_action(action)
        origin = _source(source)
        if not user.strip():
            raise LabelError("user", user, "a label needs the user who gave it")
        target = self._target(number)
        label = chosen.label
        learn = self._learnable(target) if label is Label.CONFIRMED else None
        change = self.store.apply(target, label, user.strip(), at=at or self._clock(), source=origin,
                                  note=note or None, learn=learn)
        if change.changed and label is Label.FALSE_ALARM:  # what was queued before the click
            alert_ids = self.outbox.alert_ids(target.article_id, target.narrative_id)
            pending = self.outbox.pending_of(target.narrative_id)
            self.outbox.suppress(held_by_false_alarm(target.article_id, alert_ids, pending))
        return _outcome(target, change)

    def outcome(self, alert_id: int | str) -> LabelOutcome:
        """The alert's current label, unchanged (to redraw a message)."""
        target = self._target(parse_alert_id(alert_id))
        current = self.store.current(target.alert_id)
        return _outcome(target, LabelChange(current, current, changed=False))

    def history(self, alert_id: int | str) -> list[LabelRecord]:
        """Every label the alert was given, oldest first (ended ones say how and by whom)."""
        return self.store.history(self._target(parse_alert_id(alert_id)).alert_id)

    def mute_narrative(
        self, narrative_id: str, until: datetime | None = None, user: str = "", *,
        duration: timedelta = DEFAULT_MUTE,
    ) -> Mute:
        """Keep a narrative out of Slack until `until` (default: `duration` from now, 24 h)."""
        now = self._clock()
        end = until if until is not None else now + duration
        if end <= now:
            raise LabelError("mute until", end.isoformat(), "must be in the future")
        if end - now > MAX_MUTE:
            raise LabelError("mute until", end.isoformat(),
                             "at most a year ahead; disable the narrative instead")
        by = user.strip() or "unknown"
        if not self.store.mute(narrative_id, end, by, now):
            raise NotFoundError("narrative", narrative_id, operation="mute narrative",
                                hint="see `monitor narratives list`")
        self.outbox.suppress(held_by_mute(self.outbox.pending_of(narrative_id)))
        return Mute(narrative_id, end, by, now)

    def unmute_narrative(self, narrative_id: str) -> bool:
        """End a narrative's mute; False when it was not muted."""
        return self.store.unmute(narrative_id)

    def mutes(self) -> list[Mute]:
        """The mutes running now."""
        return self.store.mutes(self._clock())

    def _target(self, alert_id: int) -> AlertTarget:
        target = self.store.target(alert_id)
        if target is None:
            raise NotFoundError("alert", alert_id, operation="label alert",
                                hint="labels go on alerts (see `monitor feedback list` or the Slack button)")
        return target

    def _learnable(self, target: AlertTarget) -> str | None:
        """The text a confirmation teaches: the evidence sentence, once per narrative."""
        if not self.learn_from_confirmed:
            return None
        text = (target.evidence or target.passage).strip()
        known = {example.text for example in self.store.learned(target.narrative_id)}
        return text if text and text not in known else None


def _source(value: LabelSource | str) -> LabelSource:
    try:
        return LabelSource(value)
    except ValueError:
        raise LabelError("source", value, "expected slack or cli") from None


def _outcome(target: AlertTarget, change: LabelChange) -> LabelOutcome:
    current = change.current
    return LabelOutcome(
        alert_id=target.alert_id, article_id=target.article_id, narrative_id=target.narrative_id,
        narrative_title=target.narrative_title, label=current.label if current else None,
        user=current.user if current else None, at=current.at if current else None,
        note=current.note if current else None, changed=change.changed,
        previous=change.previous.label if change.previous else None,
        learned_example_id=change.learned_example_id,
    )
