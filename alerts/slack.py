"""Delivering messages to Slack: one narrow interface, three ways to send.

    SlackSender        the seam: post(channel, message, thread_ts) -> message ts
    ├── BotSender      chat.postMessage with a bot token; threads supported
    ├── WebhookSender  an incoming webhook: one fixed channel, no threads, no ts
    └── ConsoleSender  writes messages to a stream or the log (no token configured)

Every failure comes out as `SlackError`, never as a slack-sdk or socket exception. It says
whether trying again later can succeed and, for rate limits, how long to wait first. The
senders never retry by themselves: the outbox does, so it sees every 429 and can pace each
channel.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from http.client import HTTPException
from typing import Protocol, TextIO
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from alerts.message import SlackMessage
from alerts.retry import retry_after_seconds
from alerts.text import printable

logger = logging.getLogger(__name__)

# Slack error codes that a later attempt can get past; any other code needs a person
# (invalid_auth, not_authed, channel_not_found, not_in_channel, is_archived, msg_too_long,
# invalid_blocks, ...). An HTTP 429 or 5xx is retryable whatever the code.
_RETRYABLE_CODES = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "service_unavailable", "request_timeout"}
)
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]*")
# What can go wrong between us and Slack: sockets and HTTP framing (retryable) and
# slack-sdk's own refusals such as a malformed URL (not retryable).
TRANSPORT_ERRORS = (OSError, HTTPException, SlackClientError, ValueError)


class SlackError(Exception):
    """A message was not delivered.

    `error` is Slack's error code (`channel_not_found`) or, when Slack sent none, the HTTP
    status or the transport failure. `retry_after` is in seconds, from Retry-After.
    """

    def __init__(
        self,
        channel: str,
        error: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self.channel = channel
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        wait = f", retry after {retry_after:g}s" if retry_after is not None else ""
        kind = "retryable" if retryable else "not retryable"
        super().__init__(f"slack {channel}: {error} ({kind}{wait})")


class SlackSender(Protocol):
    """Posts a message to a channel and returns its ts ('' when the transport has none)."""

    supports_threads: bool

    def post(self, channel: str, message: SlackMessage, thread_ts: str | None = None) -> str: ...


class BotSender:
    """Posts with chat.postMessage as a bot user (`xoxb-` token)."""

    supports_threads: bool = True

    def __init__(self, token: str, api_url: str = "https://slack.com/api/", timeout: float = 10.0) -> None:
        # retry_handlers=[] turns off slack-sdk's own retries (it retries connection errors
        # by default, and 429s if asked). Our outbox retries, and it must see each 429 to
        # honour Retry-After and pace every channel; a hidden retry would also hold a worker.
        self._client = WebClient(
            token=token,
            base_url=api_url,
            timeout=timeout,  # type: ignore[arg-type]  # annotated int; urllib takes float seconds
            retry_handlers=[],
        )

    def post(self, channel: str, message: SlackMessage, thread_ts: str | None = None) -> str:
        """Post `message` to `channel` (an id or '#name'), in the thread `thread_ts` if given."""
        try:
            response = self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=list(message.blocks),
                thread_ts=thread_ts,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            raise api_error(channel, exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(channel, exc) from exc
        return str(response.get("ts") or "")

    def check(self) -> str:
        """Verify the token with auth.test; return 'team / bot user'."""
        try:
            response = self._client.auth_test()
        except SlackApiError as exc:
            raise api_error("auth.test", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error("auth.test", exc) from exc
        return f"{response.get('team')} / {response.get('user')}"


class WebhookSender:
    """Posts to an incoming webhook, which has its own fixed channel and returns no ts."""

    supports_threads: bool = False

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        # No retries inside slack-sdk, for the same reason as BotSender.
        self._client = WebhookClient(url, timeout=timeout, retry_handlers=[])  # type: ignore[arg-type]

    def post(self, channel: str, message: SlackMessage, thread_ts: str | None = None) -> str:
        """Post `message` to the webhook's channel; `channel` only names it in errors."""
        try:
            response = self._client.send(text=message.text, blocks=list(message.blocks), unfurl_links=False)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(channel, exc) from exc
        if response.status_code == 200:
            return ""
        # Webhooks answer errors as an HTTP status with the code as plain text.
        raise failure(channel, response.status_code, response.body.strip(), response.headers)


class ConsoleSender:
    """Writes messages to `stream`, or logs them at INFO: the stand-in when Slack is not configured."""

    supports_threads: bool = True

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._count = 0

    def post(self, channel: str, message: SlackMessage, thread_ts: str | None = None) -> str:
        """Write the message: channel, fallback text, then each block's text; return 'console.N'.

        It goes to a terminal or a log as plain text: escape sequences and control characters
        are removed, as they are from anything else shown (a title must not clear the screen).
        """
        with self._lock:
            self._count += 1
            ts = f"console.{self._count}"
            where = f"slack {channel} {ts}" + (f" (thread {thread_ts})" if thread_ts else "")
            lines = (line for text in message.lines() for line in printable(text, newlines=True).splitlines())
            body = "\n".join(f"    {line}" for line in lines)
            text = printable(f"{where}: {message.text}", newlines=True) + f"\n{body}"
            if self._stream is None:
                logger.info("%s", text)
            else:
                self._stream.write(text + "\n")
                self._stream.flush()
        return ts


def api_error(channel: str, exc: SlackApiError) -> SlackError:
    response = exc.response
    data = response.data
    code = data.get("error") if isinstance(data, dict) else None
    return failure(channel, response.status_code, code, response.headers)


def failure(channel: str, status: int, code: object, headers: Mapping[str, object]) -> SlackError:
    """A SlackError from an HTTP status, Slack's error code if any, and the response headers."""
    # A 5xx from a proxy or load balancer has an HTML body, which slack-sdk turns into a long
    # message: only a real error code is kept.
    error = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None
    retryable = status == 429 or status >= 500 or error in _RETRYABLE_CODES
    return SlackError(
        channel,
        error or _status_text(status),
        retryable=retryable,
        retry_after=_retry_after(headers),
        status=status,
    )


def transport_error(channel: str, exc: Exception) -> SlackError:
    """A SlackError for a request that got no HTTP answer, or could not be made."""
    if not isinstance(exc, OSError | HTTPException):  # slack-sdk or urllib refused the request
        return SlackError(channel, f"request refused: {exc}", retryable=False)
    reason = exc.reason if isinstance(exc, URLError) else exc
    kind = "timeout" if isinstance(reason, TimeoutError) else "connection failed"
    return SlackError(channel, f"{kind}: {reason!r}", retryable=True)


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _retry_after(headers: Mapping[str, object]) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return None if value is None else retry_after_seconds(str(value), datetime.now(UTC))
