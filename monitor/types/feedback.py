"""Analysts' feedback on alerts: labels with their history, narrative mutes, learned examples."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Label(StrEnum):
    """What an analyst said about an alert."""

    CONFIRMED = "confirmed"  # the article does repeat the narrative
    FALSE_ALARM = "false_alarm"  # it does not: never alert on it (or its copies) again


class LabelAction(StrEnum):
    """What a click or `monitor feedback add` asks for (the Slack action_ids, plus undo)."""

    CONFIRM = "confirm"
    FALSE_ALARM = "false_alarm"
    UNDO = "undo"  # clears the current label; the history keeps it

    @property
    def label(self) -> Label | None:
        """The label this action leaves behind (None: no label)."""
        return {LabelAction.CONFIRM: Label.CONFIRMED, LabelAction.FALSE_ALARM: Label.FALSE_ALARM}.get(self)


class LabelSource(StrEnum):
    SLACK = "slack"
    CLI = "cli"


class LabelEnd(StrEnum):
    """Why a label stopped being the current one."""

    REPLACED = "replaced"  # a change of mind: another label took its place
    UNDONE = "undone"


@dataclass(frozen=True)
class LabelRecord:
    """One stored label, current or part of the alert's history."""

    id: int
    alert_id: int
    article_id: int
    narrative_id: str
    label: Label
    user: str
    note: str | None
    source: LabelSource
    at: datetime
    ended_at: datetime | None = None  # None while it is the alert's current label
    ended_by: str | None = None
    ended_how: LabelEnd | None = None

    @property
    def current(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class AlertTarget:
    """What a label is about: an alert (`alerts.id`) and its stored match."""

    alert_id: int
    article_id: int
    narrative_id: str
    narrative_title: str
    evidence: str  # the match's sentence closest to the narrative
    passage: str
    score: float


@dataclass(frozen=True)
class LabelChange:
    """What storage did with a label request: the current label after it, and the one before."""

    current: LabelRecord | None
    previous: LabelRecord | None
    changed: bool  # False: the request repeated the current state (a double click, a retry)
    learned_example_id: int | None = None  # the example added from a confirmation


@dataclass(frozen=True)
class Mute:
    """A narrative that does not reach Slack until `until` (it still reaches the digest)."""

    narrative_id: str
    until: datetime
    by: str
    at: datetime


@dataclass(frozen=True)
class LearnedExample:
    """A confirmed evidence sentence kept as an example phrasing of its narrative."""

    id: int
    narrative_id: str
    text: str
    alert_id: int | None
    added_by: str
    added_at: datetime


@dataclass(frozen=True)
class LabelTally:
    """Confirmed and false-alarm labels of one narrative over a period (current labels only)."""

    narrative_id: str
    confirmed: int
    false_alarms: int


@dataclass(frozen=True)
class LabelledScore:
    """A current label with its match's score: one point of calibration."""

    narrative_id: str
    score: float
    confirmed: bool
