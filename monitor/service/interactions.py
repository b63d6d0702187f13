"""`POST /slack/interactions`: Slack's button clicks over HTTP, checked, answered at once.

Every request is verified with the app's signing secret (slack-sdk's SignatureVerifier, on
the raw body) and refused when its timestamp is more than 5 minutes away from our clock, so
a captured request cannot be replayed. Without SLACK_SIGNING_SECRET nothing is accepted.
A click that passes is handed to the click service and answered 200 with an empty body;
the label and the redraw happen after the answer (Slack gives up after 3 seconds).

    401  bad or missing signature; timestamp missing or over 5 minutes off
    400  not a form with a JSON `payload`; not block_actions; unknown action; malformed alert id
    404  no such alert (or another path)          413  body over 1 MiB
    503  SLACK_SIGNING_SECRET is not set
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol, Self

from slack_sdk.signature import SignatureVerifier

from alerts.interactions import InteractionError, click_of, payload_of_form
from monitor.service.serving import BackgroundServer
from monitor.types import Click

log = logging.getLogger("monitor.service.interactions")

PATH = "/slack/interactions"
MAX_AGE = 300  # seconds; Slack's advice, and what SignatureVerifier checks too
MAX_BODY = 1024 * 1024  # a click carries the whole message: up to 50 blocks of 3000 characters


class ClickSink(Protocol):
    """Where checked clicks go (monitor.service.clicks.ClickService)."""

    def known(self, alert_id: int) -> bool: ...

    def submit(self, click: Click) -> None: ...


class RequestCheck:
    """Says why a request is refused, or returns its click."""

    def __init__(self, secret: str | None, clicks: ClickSink, clock: Callable[[], float] = time.time,
                 *, slack_in_use: bool = True) -> None:
        self._verifier = SignatureVerifier(secret) if secret and secret.strip() else None
        self._clicks = clicks
        self._clock = clock
        if self._verifier is None and slack_in_use:
            log.warning("SLACK_SIGNING_SECRET is not set: every request to %s is refused; set it to the "
                        "signing secret on the Slack app's Basic Information page", PATH)
        elif self._verifier is None:  # alerts go to the console: there are no buttons to click
            log.info("SLACK_SIGNING_SECRET is not set: every request to %s is refused (no Slack "
                     "configured)", PATH)

    def click(self, headers: dict[str, str], body: bytes) -> Click:
        """The request's click; InteractionError (with its HTTP status) when refused."""
        self._authentic(headers, body)
        click = click_of(payload_of_form(body))
        if not self._clicks.known(click.alert_id):
            raise InteractionError(f"no alert with id {click.alert_id}", 404)
        return click

    def _authentic(self, headers: dict[str, str], body: bytes) -> None:
        if self._verifier is None:
            raise InteractionError("no signing secret configured (SLACK_SIGNING_SECRET)", 503)
        stamp = headers.get("x-slack-request-timestamp", "")
        if not stamp.isascii() or not stamp.isdigit():
            raise InteractionError("missing or malformed X-Slack-Request-Timestamp", 401)
        skew = self._clock() - int(stamp)
        if abs(skew) > MAX_AGE:
            raise InteractionError(f"timestamp {skew:+.0f} s from our clock (replayed, or clock skew)", 401)
        signature = headers.get("x-slack-signature", "")
        try:
            body.decode("utf-8")  # SignatureVerifier decodes it and would raise
        except UnicodeDecodeError:
            raise InteractionError("body is not UTF-8 text", 400) from None
        if not self._verifier.is_valid(body=body, timestamp=stamp, signature=signature):
            raise InteractionError("signature does not match (wrong SLACK_SIGNING_SECRET, or forged)", 401)


class InteractionServer(BackgroundServer):
    """A threaded HTTP server for `POST /slack/interactions`; start() and stop() it."""

    def __init__(self, host: str, port: int, check: RequestCheck, clicks: ClickSink) -> None:
        super().__init__(host, port, _handler(check, clicks), "slack-http")

    def start(self) -> Self:
        super().start()
        log.info("Slack interactions served", extra={"url": f"http://{self.address[0]}:{self.address[1]}{PATH}"})
        return self


def _handler(check: RequestCheck, clicks: ClickSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self._send(404, f"not found: Slack posts to {PATH}\n")
                return
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > MAX_BODY:
                self._refuse(InteractionError("body missing or over 1 MiB", 413))
                return
            body = self.rfile.read(int(length))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                click = check.click(headers, body)
            except InteractionError as exc:
                self._refuse(exc)
                return
            clicks.submit(click)  # a queue: the work is done after the answer
            self._send(200, "")
            log.info("click accepted", extra={"alert": click.alert_id, "action": click.action.value,
                                              "user": click.user_id})

        def do_GET(self) -> None:
            self._send(405, f"Slack POSTs interactions to {PATH}\n")

        def _refuse(self, exc: InteractionError) -> None:
            log.warning("Slack interaction refused", extra={"status": exc.status, "reason": exc.reason})
            self._send(exc.status, exc.reason + "\n")

        def _send(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # each request is logged once, above, with its outcome

    return Handler
