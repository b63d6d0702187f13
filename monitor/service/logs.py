"""Structured logs: one line per event, `key=value` for people or JSON for machines.

Every line, the libraries' included, passes through `redact` on its way out: credentials in
URLs (`user:pass@`), Slack webhook paths and tokens, and the secrets the environment holds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else came in through `extra=` and is a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# Environment variables whose values are secrets wherever they appear (a webhook on any host).
SECRET_ENV = ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "MONITOR_SMTP_PASSWORD", "SLACK_SIGNING_SECRET",
              "SLACK_APP_TOKEN")
_MIN_SECRET = 6  # shorter values would blank out ordinary words; the patterns still apply
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#@\s\"'\\<>]+)@", re.IGNORECASE)
_SLACK_HOOK = re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+",
                         re.IGNORECASE)
_SLACK_TOKEN = re.compile(r"\b(xox[a-z]-|xapp-)[A-Za-z0-9-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _hide_userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:***@" if colon else f"{match['scheme']}***@"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with credentials in URLs, Slack webhook paths and tokens, and `secrets` replaced by ***."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _USERINFO.sub(_hide_userinfo, text)
    text = _SLACK_HOOK.sub(r"\1***", text)
    return _SLACK_TOKEN.sub(r"\1***", text)


def environment_secrets() -> tuple[str, ...]:
    """The values of SECRET_ENV that are set and long enough to replace safely, longest first."""
    values = {os.environ.get(name, "").strip() for name in SECRET_ENV}
    return tuple(sorted((v for v in values if len(v) >= _MIN_SECRET), key=len, reverse=True))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class KeyValueFormatter(logging.Formatter):
    """`2026-11-25T08:00:00.000+00:00 INFO poll ok feed=bbc url=https://... new=3`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.getMessage()]
        parts += [f"{key}={_quote(value)}" for key, value in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line, self.secrets)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, then the event's fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _timestamp(record), "level": record.levelname.lower(),
            "logger": record.name, "event": record.getMessage(), **_fields(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        # Redacted before encoding: a secret with a quote in it would not match once escaped.
        data = {key: self._redacted(value) for key, value in data.items()}
        return json.dumps(data, default=str, ensure_ascii=False)

    def _redacted(self, value: object) -> object:
        if value is None or isinstance(value, bool | int | float):
            return value
        return redact(str(value), self.secrets)


def _quote(value: object) -> str:
    text = str(value)
    quote = not text or any(c in text for c in ' "=') or _CONTROL.search(text)
    return json.dumps(text, ensure_ascii=False) if quote else text


def setup_logging(level: str = "info", json_lines: bool = False, stream: TextIO | None = None) -> None:
    """Route every logger (ours and the libraries') through one handler on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    secrets = environment_secrets()
    handler.setFormatter(JsonFormatter(secrets) if json_lines else KeyValueFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request chatter from the HTTP client and the scheduler, and Alembic's list of the
    # plugins it sets up at every start, are noise at INFO.
    for noisy in ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler",
                  "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
