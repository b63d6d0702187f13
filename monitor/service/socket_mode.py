"""Socket Mode: Slack's clicks over a WebSocket the monitor opens, for teams without a public URL.

slack-sdk's builtin client (no extra dependency) asks `apps.connections.open` at
`[alerts.slack] api_url` for a WebSocket URL with the app-level token (SLACK_APP_TOKEN,
scope connections:write), acknowledges every envelope at once, and reconnects when the
connection drops or Slack asks it to. The clicks go to the same click service as the HTTP
endpoint's; the envelope's origin is the proof of authenticity (no signature in this mode).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from alerts.interactions import InteractionError, click_of
from monitor.service.interactions import ClickSink

if TYPE_CHECKING:
    from slack_sdk.socket_mode.builtin import SocketModeClient
    from slack_sdk.socket_mode.request import SocketModeRequest

log = logging.getLogger("monitor.service.socket_mode")

FIRST_RETRY = 1.0  # seconds before retrying a first connection that failed; doubles up to MAX_RETRY
MAX_RETRY = 60.0


class SocketListener:
    """Keeps one Socket Mode connection open and feeds its clicks to `clicks`."""

    def __init__(self, app_token: str, api_url: str, clicks: ClickSink, *,
                 ping_interval: float = 10.0) -> None:
        self._app_token = app_token
        self._api_url = api_url
        self._clicks = clicks
        self._ping_interval = ping_interval
        self._stop = threading.Event()
        self._client: SocketModeClient | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SocketListener:
        """Connect in the background: a Slack that cannot be reached yet is retried, not fatal."""
        self._thread = threading.Thread(target=self._connect, name="slack-socket", daemon=True)
        self._thread.start()
        return self

    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._client is not None:
            self._client.close()

    def _connect(self) -> None:
        """Open the first connection; after it, slack-sdk's client reconnects by itself."""
        from slack_sdk import WebClient
        from slack_sdk.socket_mode.builtin import SocketModeClient

        client = SocketModeClient(
            app_token=self._app_token, web_client=WebClient(base_url=self._api_url, retry_handlers=[]),
            auto_reconnect_enabled=True, ping_interval=self._ping_interval,
            logger=logging.getLogger("monitor.service.socket_mode.client"),
        )
        client.socket_mode_request_listeners.append(self._on_request)  # type: ignore[arg-type]
        self._client = client
        delay = FIRST_RETRY
        while not self._stop.is_set():
            try:
                client.connect()
            except Exception as exc:  # slack-sdk raises SlackApiError, OSError, its own errors ...
                log.warning("Socket Mode connection failed; retrying",
                            extra={"error": str(exc) or type(exc).__name__, "retry_in": delay})
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_RETRY)
                continue
            log.info("Socket Mode connected")
            return

    def _on_request(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        """Queue the click (the work is done later), then acknowledge: every envelope, refused or not."""
        from slack_sdk.socket_mode.response import SocketModeResponse

        try:
            self._take(request)
        finally:
            # Slack sends an envelope again when it is not acknowledged within 3 seconds.
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    def _take(self, request: SocketModeRequest) -> None:
        if request.type != "interactive":
            log.info("Socket Mode envelope ignored", extra={"type": request.type})
            return
        try:
            click = click_of(request.payload)
            if not self._clicks.known(click.alert_id):
                raise InteractionError(f"no alert with id {click.alert_id}", 404)
        except InteractionError as exc:
            log.warning("Slack interaction refused", extra={"via": "socket", "reason": exc.reason})
            return
        self._clicks.submit(click)
        log.info("click accepted", extra={"via": "socket", "alert": click.alert_id,
                                          "action": click.action.value, "user": click.user_id})
