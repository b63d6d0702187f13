"""Clicks on alert buttons, as Slack sends them, and what an alert card shows about its label."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.types.alerts import AlertContent


class Action(StrEnum):
    """The buttons' action_ids. The first three are on every alert (scripts depend on them)."""

    CONFIRM = "confirm"
    FALSE_ALARM = "false_alarm"
    MUTE = "mute"
    MUTE_FOR = "mute_for"  # after a mute, another duration: action_ids mute_for_1h, mute_for_7d
    UNDO = "undo"


@dataclass(frozen=True)
class Click:
    """One button press from a `block_actions` payload, checked for shape (not for permission)."""

    action: Action
    alert_id: int
    user_id: str
    user_name: str
    channel_id: str | None
    message_ts: str | None
    response_url: str | None
    mute_seconds: float | None = None  # MUTE_FOR only


@dataclass(frozen=True)
class CardLabel:
    """What an alert card says about its alert: the current label or mute, who and when."""

    kind: str  # "confirmed", "false_alarm" or "muted"
    user: str  # a Slack user id (shown as a mention) or a terminal user name
    at: datetime
    until: datetime | None = None  # "muted" only


@dataclass(frozen=True)
class CardEntry:
    """One narrative on an alert card: its alert id, what it shows, and its label if any."""

    alert_id: int
    content: AlertContent
    label: CardLabel | None = None
