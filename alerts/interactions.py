"""Reading a click on an alert button out of Slack's interaction payload.

Slack POSTs `payload=<JSON>` as a form to the request URL; Socket Mode hands the same JSON
object over the WebSocket. Both end here, after the request is known to come from Slack
(the signature or the app-level token). Only the shape is checked: whether the alert exists
and whether the user may label it is for the caller.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from monitor.types import Action, Click

MAX_MUTE = 30 * 86400.0  # seconds; a longer mute from a forged-looking value is refused
_ALERT_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_MUTE_VALUE = re.compile(r"^([1-9][0-9]{0,17}):([1-9][0-9]{0,9})$")
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,40}$")


class InteractionError(Exception):
    """A request that is not a click we can act on; `status` is the HTTP answer for it."""

    def __init__(self, reason: str, status: int = 400) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


def payload_of_form(body: bytes) -> dict[str, Any]:
    """The JSON object in the `payload` field of a form-encoded request body."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InteractionError("body is not a form") from exc
    values = fields.get("payload")
    if not values or len(values) != 1:
        raise InteractionError("form has no single `payload` field")
    try:
        payload = json.loads(values[0])
    except ValueError as exc:
        raise InteractionError("payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise InteractionError("payload is not a JSON object")
    return payload


def click_of(payload: dict[str, Any]) -> Click:
    """The click in a `block_actions` payload; InteractionError for anything else."""
    kind = payload.get("type")
    if kind != "block_actions":
        raise InteractionError(f"payload type {str(kind)[:40]!r} is not block_actions")
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise InteractionError("block_actions without exactly one action")
    action_id, value = actions[0].get("action_id"), actions[0].get("value")
    name = str(action_id)
    try:
        action = Action(Action.MUTE_FOR if name.startswith(f"{Action.MUTE_FOR}_") else name)
    except ValueError as exc:
        raise InteractionError(f"unknown action_id {str(action_id)[:40]!r}") from exc
    alert_id, seconds = _value(action, value)
    user = payload.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user_id, str) or not _SLACK_ID.match(user_id):
        raise InteractionError("no valid user id")
    assert isinstance(user, dict)
    name = user.get("username") or user.get("name") or user_id
    container = _dict(payload.get("container"))
    channel = _dict(payload.get("channel")).get("id") or container.get("channel_id")
    ts = container.get("message_ts") or _dict(payload.get("message")).get("ts")
    response_url = payload.get("response_url")
    return Click(action, alert_id, user_id, str(name)[:100], _str(channel), _str(ts),
                 response_url if _https(response_url) else None, seconds)


def _value(action: Action, value: object) -> tuple[int, float | None]:
    """The alert id (and, for MUTE_FOR, the duration) a button's value holds."""
    if not isinstance(value, str):
        raise InteractionError("button has no value")
    if action is Action.MUTE_FOR:
        found = _MUTE_VALUE.match(value)
        if not found or float(found[2]) > MAX_MUTE:
            raise InteractionError(f"malformed mute value {value[:40]!r}")
        return int(found[1]), float(found[2])
    if not _ALERT_ID.match(value):
        raise InteractionError(f"malformed alert id {value[:40]!r}")
    return int(value), None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _https(url: object) -> bool:
    # The payload is authenticated, so the URL is Slack's (https; the test stand-in's is http).
    return isinstance(url, str) and url.startswith(("https://", "http://"))
