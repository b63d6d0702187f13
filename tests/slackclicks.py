"""The interactive half of the Slack stand-in: clicks on posted buttons, and what answers them.

`SlackServer` (tests/slackserver.py) inherits this. A test clicks a button that is really in
a posted message (`click` refuses one that is not), gets the `block_actions` payload Slack
would send, and signs it (`signed_request`) as Slack does. The app's answers are played back
honestly: `chat.update` of a known message (blocks checked), `chat.postEphemeral`, the
click's `response_url` (single message, at most five uses), `usergroups.users.list` and
`apps.connections.open` (with the app-level token, handing out `socket_url`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from slackblocks import problem

APP_TOKEN = "xapp-1-test-app-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
RESPONSE_PATH = "/actions/"
RESPONSE_USES = 5  # Slack: a response_url works up to five times in 30 minutes


@dataclass(frozen=True)
class Ephemeral:
    """A message shown to one user only."""

    channel: str
    user: str
    text: str
    via: str  # "api" or "response_url"


@dataclass
class _Response:
    channel: str
    ts: str
    uses: int = 0


def signed_request(body: bytes, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    """The headers Slack sends with a request body: its timestamp and v0 HMAC-SHA256 signature."""
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def form_body(payload: dict[str, Any]) -> bytes:
    """An interaction payload as Slack POSTs it: a form with one `payload` field of JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode()


class InteractiveSlack:
    """Mixin: needs `_lock`, `_messages`, `channels`, `token`, `base_url` and `_authorized`."""

    def _authorized(self, headers: dict[str, str], payload: dict[str, Any]) -> bool: ...

    _lock: threading.Lock
    _messages: list[Any]
    channels: set[str]
    token: str
    base_url: str

    def _setup_interactive(self, app_token: str, usergroups: dict[str, list[str]] | None) -> None:
        self.app_token = app_token
        self.usergroups = dict(usergroups or {})
        self.socket_url: str | None = None  # apps.connections.open hands this out
        self.ephemerals: list[Ephemeral] = []
        self.updates: list[tuple[str, str]] = []  # (channel, ts) of every accepted edit
        self._responses: dict[str, _Response] = {}
        self._ids = itertools.count(1)

    def message(self, channel: str, ts: str) -> Any:
        """The message `ts` in `channel` as it is now (after edits)."""
        with self._lock:
            return next(m for m in self._messages if m.channel == channel and m.ts == ts)

    def click(self, channel: str, ts: str, action_id: str, value: str | None = None,
              user: str = "U0ANALYST", name: str = "ana") -> dict[str, Any]:
        """The block_actions payload of a click on a button of the message (it must be there)."""
        message = self.message(channel, ts)
        found = [(block, element) for block in message.blocks if block.get("type") == "actions"
                 for element in block["elements"]
                 if element["action_id"] == action_id and (value is None or element.get("value") == value)]
        if not found:
            raise LookupError(f"no {action_id!r} button with value {value!r} in message {ts}")
        block, button = found[0]
        number = next(self._ids)
        url = f"{self.base_url}{RESPONSE_PATH}T000/{number}/{hashlib.sha1(str(number).encode()).hexdigest()}"
        with self._lock:
            self._responses[url.removeprefix(self.base_url)] = _Response(channel, ts)
        return {
            "type": "block_actions", "api_app_id": "A000", "token": "deprecated-verification-token",
            "team": {"id": "T000", "domain": "test"}, "trigger_id": f"{number}.000.abc",
            "user": {"id": user, "username": name, "name": name, "team_id": "T000"},
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "channel": {"id": channel, "name": channel.lstrip("#").lower()},
            "message": {"type": "message", "ts": ts, "text": message.text, "blocks": message.blocks},
            "response_url": url,
            "actions": [{"type": "button", "action_id": action_id, "block_id": block.get("block_id", ""),
                         "value": button.get("value"), "text": button["text"],
                         "action_ts": f"{time.time():.6f}"}],
        }

    def _interactive(self, path: str, headers: dict[str, str], payload: dict[str, Any] | None) -> Any:
        """The answer for the interactive methods, or None for a path this mixin does not serve."""
        from slackserver import _json  # the module that imports this one defines the answers

        if path.startswith(RESPONSE_PATH):
            return self._respond(path, payload)
        methods = {"/api/chat.update": self._chat_update, "/api/chat.postEphemeral": self._post_ephemeral,
                   "/api/usergroups.users.list": self._usergroup_users}
        if path == "/api/apps.connections.open":
            if headers.get("authorization") != f"Bearer {self.app_token}":
                return _json(ok=False, error="invalid_auth")
            if self.socket_url is None:
                return _json(ok=False, error="internal_error")
            return _json(ok=True, url=self.socket_url)
        if path not in methods:
            return None
        if payload is None:
            return _json(ok=False, error="invalid_json")
        if not self._authorized(headers, payload):
            return _json(ok=False, error="invalid_auth")
        return methods[path](payload)

    def _chat_update(self, payload: dict[str, Any]) -> Any:
        from slackserver import _json

        channel, ts = str(payload.get("channel", "")), str(payload.get("ts", ""))
        if channel not in self.channels:
            return _json(ok=False, error="channel_not_found")
        refused = problem(payload)
        if refused:
            return _json(ok=False, error=refused)
        if not self._edit(channel, ts, payload):
            return _json(ok=False, error="message_not_found")
        return _json(ok=True, channel=channel, ts=ts, text=str(payload.get("text", "")))

    def _post_ephemeral(self, payload: dict[str, Any]) -> Any:
        from slackserver import _json

        channel, user = str(payload.get("channel", "")), str(payload.get("user", ""))
        if channel not in self.channels:
            return _json(ok=False, error="channel_not_found")
        if not user:
            return _json(ok=False, error="user_not_in_channel")
        if problem(payload):
            return _json(ok=False, error=problem(payload))
        with self._lock:
            self.ephemerals.append(Ephemeral(channel, user, str(payload.get("text", "")), "api"))
        return _json(ok=True, message_ts=f"{time.time():.6f}")

    def _usergroup_users(self, payload: dict[str, Any]) -> Any:
        from slackserver import _json

        group = str(payload.get("usergroup", ""))
        if group not in self.usergroups:
            return _json(ok=False, error="no_such_subteam")
        return _json(ok=True, users=self.usergroups[group])

    def _respond(self, path: str, payload: dict[str, Any] | None) -> Any:
        from slackserver import _json, _plain

        with self._lock:
            response = self._responses.get(path)
            if response is None or response.uses >= RESPONSE_USES:
                return _plain(404, "used_url")
            response.uses += 1
        if payload is None:
            return _plain(400, "invalid_payload")
        if payload.get("response_type") == "ephemeral":
            with self._lock:
                self.ephemerals.append(Ephemeral(response.channel, "", str(payload.get("text", "")),
                                                 "response_url"))
            return _json(ok=True)
        if not payload.get("replace_original"):
            return _plain(400, "only replace_original and ephemeral answers are played here")
        if problem(payload):
            return _plain(400, str(problem(payload)))
        self._edit(response.channel, response.ts, payload)
        return _json(ok=True)

    def _edit(self, channel: str, ts: str, payload: dict[str, Any]) -> bool:
        with self._lock:
            for n, old in enumerate(self._messages):
                if old.channel == channel and old.ts == ts:
                    self._messages[n] = replace(old, text=str(payload.get("text", "")),
                                                blocks=list(payload.get("blocks") or []))
                    self.updates.append((channel, ts))
                    return True
        return False
