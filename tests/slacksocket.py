"""A loopback stand-in for Slack's Socket Mode endpoint (a WebSocket server), for tests.

    with SocketSlack(slack) as socket_slack:      # slack: the Web API stand-in
        ...                                       # the client opens apps.connections.open, then connects
        envelope = socket_slack.send_interactive(payload)
        socket_slack.wait_ack(envelope)

Like Slack it greets each connection with `hello`, sends envelopes
(`{"envelope_id", "type": "interactive", "payload", "accepts_response_payload"}`) and records
the acknowledgements (`{"envelope_id"}`) it gets back. `drop()` cuts the live connection
without a closing handshake, as a network failure would; the client must open a new one.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from slackserver import SlackServer


class SocketSlack:
    """Serves ws://127.0.0.1:PORT/link and points the Web API stand-in's apps.connections.open at it."""

    def __init__(self, slack: SlackServer) -> None:
        self.slack = slack
        self.connections = 0  # connections accepted so far
        self.acks: list[str] = []
        self._live: ServerConnection | None = None
        self._lock = threading.Lock()
        self._server: Server | None = None

    def __enter__(self) -> SocketSlack:
        self._server = serve(self._session, "127.0.0.1", 0)
        port = self._server.socket.getsockname()[1]
        self.slack.socket_url = f"ws://127.0.0.1:{port}/link/?ticket={uuid.uuid4().hex}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.slack.socket_url = None
        if self._server is not None:
            self._server.shutdown()

    def _session(self, connection: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
            self._live = connection
        connection.send(json.dumps({"type": "hello", "num_connections": 1,
                                    "connection_info": {"app_id": "A000"}}))
        with contextlib.suppress(ConnectionClosed, OSError):
            for raw in connection:
                message = json.loads(raw)
                if isinstance(message, dict) and "envelope_id" in message:
                    with self._lock:
                        self.acks.append(str(message["envelope_id"]))

    def wait_connected(self, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until `count` connections have been accepted and one is live."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.connections >= count and self._live is not None:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"{self.connections} connection(s) after {timeout} s, wanted {count}")

    def send_interactive(self, payload: dict[str, Any]) -> str:
        """Send a click envelope on the live connection; its envelope id."""
        envelope_id = str(uuid.uuid4())
        with self._lock:
            live = self._live
        assert live is not None, "no live connection"
        live.send(json.dumps({"envelope_id": envelope_id, "type": "interactive", "payload": payload,
                              "accepts_response_payload": False}))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 3.0) -> float:
        """Seconds until the envelope was acknowledged (Slack retries after 3); TimeoutError if never."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with self._lock:
                if envelope_id in self.acks:
                    return time.monotonic() - started
            time.sleep(0.01)
        raise TimeoutError(f"envelope {envelope_id} not acknowledged in {timeout} s")

    def drop(self) -> None:
        """Cut the live connection at the TCP level: no close frame, as when a network fails."""
        with self._lock:
            live, self._live = self._live, None
        assert live is not None, "no live connection"
        with contextlib.suppress(OSError):
            live.socket.shutdown(socket.SHUT_RDWR)
        live.socket.close()
