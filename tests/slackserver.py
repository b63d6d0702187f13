"""A loopback stand-in for Slack's Web API and one incoming webhook, for tests.

    with SlackServer() as slack:
        ts = BotSender(TOKEN, api_url=slack.api_url).post("C0ALERTS", message)
        assert slack.messages_in("C0ALERTS")[0].ts == ts

It answers `POST /api/chat.postMessage` and `POST /api/auth.test` as Slack does (HTTP 200
with `{"ok": false, "error": ...}` for refusals), and the webhook at `WEBHOOK_PATH` (an HTTP
status with the error code as text); clicks and the methods that answer them are in
tests/slackclicks.py. It is honest where our code could go wrong: it checks
the bot token, knows its channels, allows one message per second per channel (then HTTP 429
with Retry-After), and refuses blocks over Slack's limits. `fail_next` and `drop_next`
inject server errors and connections closed without an answer.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import pytest

from slackblocks import problem
from slackclicks import APP_TOKEN, InteractiveSlack

TOKEN = "xoxb-test-token"
WEBHOOK_PATH = "/webhook/T000/B000/XXX"
_FIRST_TS = 1_700_000_000_000_000  # microseconds; Slack's ts is seconds.micros as a string
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass(frozen=True)
class Posted:
    """A message the server accepted."""

    channel: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    ts: str
    via: str  # "api" or "webhook"


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int = 200, headers: dict[str, str] | None = None, **data: Any) -> _Answer:
    body = json.dumps(data).encode()
    return _Answer(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, text.encode(), {"Content-Type": "text/html", **(headers or {})})


class SlackServer(InteractiveSlack):
    """A threaded HTTP/1.1 server on 127.0.0.1 playing Slack; `min_interval=None` lifts the rate limit."""

    def __init__(
        self,
        channels: Iterable[str] = ("C0ALERTS", "C0WATCH", "#alerts"),
        *,
        webhook_channel: str = "C0HOOK",
        min_interval: float | None = 1.0,
        token: str = TOKEN,
        app_token: str = APP_TOKEN,
        usergroups: dict[str, list[str]] | None = None,
    ) -> None:
        self.channels = set(channels) | {webhook_channel}
        self.webhook_channel = webhook_channel
        self.min_interval = min_interval
        self.token = token
        self.request_count = 0  # every request received, faults included
        self._messages: list[Posted] = []
        self._last_post: dict[str, float] = {}
        self._faults: list[int | None] = []  # queued: an HTTP status, or None to drop
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self.base_url = ""
        self._setup_interactive(app_token, usergroups)

    def __enter__(self) -> SlackServer:
        self._httpd = httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next `n` requests with `status` and an HTML body, as a proxy would."""
        with self._lock:
            self._faults += [status] * n

    def drop_next(self, n: int = 1) -> None:
        """Close the connection of the next `n` requests without answering."""
        with self._lock:
            self._faults += [None] * n

    @property
    def messages(self) -> list[Posted]:
        with self._lock:
            return list(self._messages)

    def messages_in(self, channel: str) -> list[Posted]:
        """Accepted messages in `channel`, thread replies included, oldest first."""
        return [message for message in self.messages if message.channel == channel]

    def thread(self, ts: str) -> list[Posted]:
        """The replies in the thread under the message `ts`."""
        return [message for message in self.messages if message.thread_ts == ts]

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> _Answer | None:
        """The answer to one request; None means hang up."""
        with self._lock:
            self.request_count += 1
            if self._faults:
                status = self._faults.pop(0)
                return None if status is None else _plain(status, "<html>upstream error</html>")
        if path == WEBHOOK_PATH:
            return self._webhook(body)
        if path.startswith("/webhook/"):
            return _plain(404, "no_service")  # a removed or mistyped webhook
        if path == "/api/auth.test":
            return self._auth_test(headers, body)
        if path == "/api/chat.postMessage":
            return self._post_message(headers, body)
        interactive = self._interactive(path, headers, _payload(headers, body))
        if interactive is not None:
            return interactive
        return _json(404, ok=False, error="unknown_method")

    def _authorized(self, headers: dict[str, str], payload: dict[str, Any]) -> bool:
        bearer = headers.get("authorization", "")
        return bearer == f"Bearer {self.token}" or payload.get("token") == self.token

    def _auth_test(self, headers: dict[str, str], body: bytes) -> _Answer:
        if not self._authorized(headers, _payload(headers, body) or {}):
            return _json(ok=False, error="invalid_auth")
        return _json(ok=True, url="https://test.slack.com/", team="Test", user="monitor", team_id="T000")

    def _post_message(self, headers: dict[str, str], body: bytes) -> _Answer:
        payload = _payload(headers, body)
        if payload is None:
            return _json(ok=False, error="invalid_json")
        if not self._authorized(headers, payload):
            return _json(ok=False, error="invalid_auth")
        channel = str(payload.get("channel", ""))
        if channel not in self.channels:
            return _json(ok=False, error="channel_not_found")
        refused = problem(payload)
        if refused:
            return _json(ok=False, error=refused)
        thread_ts = payload.get("thread_ts")
        posted = self._accept(channel, payload, str(thread_ts) if thread_ts else None, "api")
        if posted is None:
            return _json(429, {"Retry-After": self._wait(channel)}, ok=False, error="ratelimited")
        return _json(ok=True, channel=channel, ts=posted.ts, message={"text": posted.text, "ts": posted.ts})

    def _webhook(self, body: bytes) -> _Answer:
        payload = _payload({"content-type": "application/json"}, body)
        if payload is None:
            return _plain(400, "invalid_payload")
        refused = problem(payload)
        if refused:
            return _plain(400, refused)
        if self._accept(self.webhook_channel, payload, None, "webhook") is None:
            return _plain(429, "rate_limited", {"Retry-After": self._wait(self.webhook_channel)})
        return _plain(200, "ok")

    def _accept(
        self, channel: str, payload: dict[str, Any], thread_ts: str | None, via: str
    ) -> Posted | None:
        """Record the message and give it a ts, unless the channel's rate limit refuses it."""
        now = time.monotonic()
        with self._lock:
            last = self._last_post.get(channel)
            if self.min_interval is not None and last is not None and now - last < self.min_interval:
                return None
            self._last_post[channel] = now
            micros = _FIRST_TS + 100 * (len(self._messages) + 1)
            ts = f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
            blocks = list(payload.get("blocks") or [])
            posted = Posted(channel, str(payload.get("text", "")), blocks, thread_ts, ts, via)
            self._messages.append(posted)
            return posted

    def _wait(self, channel: str) -> str:
        """Whole seconds until `channel` takes a message again, as Retry-After says it."""
        with self._lock:
            left = (self.min_interval or 0) - (time.monotonic() - self._last_post.get(channel, 0.0))
        return str(max(math.ceil(left), 1))


def _payload(headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
    """The request's parameters, from a JSON body (as slack-sdk sends them) or a form."""
    try:
        if "json" in headers.get("content-type", ""):
            data = json.loads(body or b"{}")
            return data if isinstance(data, dict) else None
        form: dict[str, Any] = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if isinstance(form.get("blocks"), str):
            form["blocks"] = json.loads(form["blocks"])
        return form
    except (ValueError, UnicodeDecodeError):
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # server_close() must not wait for a handler stuck on a client

    def __init__(self, address: tuple[str, int], handler: Any, owner: SlackServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up; report anything else."""
        if not isinstance(sys.exc_info()[1], _DISCONNECTS):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Wake handlers blocked reading the next keep-alive request."""
        with self.connections_lock:
            connections = list(self.connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # see feedserver: avoids a delayed-ACK wait per answer
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Tests read `messages`, not a log."""

    def do_GET(self) -> None:
        """Web API methods read with GET (usergroups.users.list): the query string is the form."""
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        headers["content-type"] = "application/x-www-form-urlencoded"
        self._send(self.server.owner.answer(path, headers, query.encode()))

    def do_POST(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self.rfile.read(int(headers.get("content-length") or 0))
        self._send(self.server.owner.answer(self.path.split("?", 1)[0], headers, body))

    def _send(self, answer: _Answer | None) -> None:
        if answer is None:
            self.close_connection = True  # hang up: the client reads EOF instead of a status line
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except _DISCONNECTS:
            self.close_connection = True


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    """A started Slack stand-in with the default channels and rate limit, stopped after the test."""
    with SlackServer() as server:
        yield server
