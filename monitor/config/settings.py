"""feeds.toml -> validated settings: reading the file, naming every problem, resolving the environment."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config.engine import EngineSettings, resolve_engine
from monitor.config.sections import ConfigFile, FeedSection, MonitorSection
from monitor.config.values import describe_seconds, parse_duration
from monitor.errors import ConfigError
from monitor.ingest.fetch import FetchOptions
from monitor.types import Feed

CONFIG_ENV = "MONITOR_CONFIG"
DATABASE_ENV = "MONITOR_DATABASE_URL"
DEFAULT_CONFIG = Path("feeds.toml")


@dataclass(frozen=True)
class Settings:
    """The validated configuration, with paths and environment overrides resolved."""

    path: Path
    file: ConfigFile
    database_url: str
    data_dir: Path
    # [engine] with MONITOR_ENGINE and MONITOR_BROKER_URL applied
    engine: EngineSettings = field(default_factory=EngineSettings)

    @property
    def monitor(self) -> MonitorSection:
        return self.file.monitor

    def feeds(self) -> list[Feed]:
        """Every configured feed, enabled or not, with defaults applied."""
        return [_feed(feed_id, section, self.monitor) for feed_id, section in self.file.feeds.items()]

    def fetch_options(self) -> FetchOptions:
        """Options for the HTTP fetcher."""
        m = self.monitor
        options = FetchOptions(
            connect_timeout=m.connect_timeout,
            total_timeout=m.timeout,
            max_body_bytes=m.max_body_size,
            per_host_concurrency=m.per_host_concurrency,
            per_host_delay=m.per_host_delay,
            retry_after_cap=m.retry_after_cap,
        )
        if m.user_agent:
            return FetchOptions(**{**options.__dict__, "user_agent": m.user_agent})
        return options


def _feed(feed_id: str, section: FeedSection, monitor: MonitorSection) -> Feed:
    return Feed(
        id=feed_id,
        url=section.url,
        name=section.name,
        interval=int(section.interval or monitor.poll_interval),
        enabled=section.enabled,
        language=section.language.lower().replace("_", "-") if section.language else None,
        tags=section.tags,
    )


def config_path(explicit: str | Path | None = None) -> tuple[Path, bool]:
    """The config file to read, and whether the user named it (flag or environment)."""
    if explicit:
        return Path(explicit), True
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), True
    return DEFAULT_CONFIG, False


def load_settings(explicit: str | Path | None = None) -> Settings:
    """Read and validate the config file; raise ConfigError listing every problem."""
    path, named = config_path(explicit)
    if not path.exists():
        if named:
            raise ConfigError(path, ["file not found"])
        return _settings(path, ConfigFile())
    return _settings(path, parse_config(path.read_bytes(), path))


def parse_config(raw: bytes, path: Path) -> ConfigFile:
    """Validate the bytes of a config file."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"TOML syntax error: {exc}"]) from exc
    problems = _control_characters(data, ())
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
    if problems:
        raise ConfigError(path, list(dict.fromkeys(problems)))
    return file


# C0, DEL and C1. A NUL in a feed name (say, from a hostile feed's title) is refused by
# PostgreSQL when the feed is stored; a newline in digest.subject would end a mail header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _control_characters(value: object, loc: tuple[str, ...]) -> list[str]:
    """One problem per key or string value (at any depth) holding a control character."""
    where = ".".join(loc)
    if isinstance(value, str):
        found = _CONTROL.search(value)
        return [f"{where}: contains the control character U+{ord(found.group()):04X}; remove it"
                ] if found else []
    if isinstance(value, dict):
        problems = []
        for key, item in value.items():
            if _CONTROL.search(key):
                shown = ".".join((*loc, _CONTROL.sub("?", key)))
                problems.append(f"{shown}: a key with a control character; remove it")
            else:
                problems += _control_characters(item, (*loc, key))
        return problems
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _control_characters(item, (*loc, str(i)))]
    return []


_PATTERN_MESSAGES = {
    "url": "must be an http:// or https:// URL",
    "api_url": "must be an http:// or https:// URL",
    "time": "must be a time of day as HH:MM (24-hour)",
    "recipients": "must be an email address",
    "sender": "must be an email address",
    "metrics_host": "must be an IP address or host name (e.g. \"127.0.0.1\" or \"0.0.0.0\")",
    "host": "must be an IP address or host name (e.g. \"127.0.0.1\" or \"0.0.0.0\")",
    "allowed_users": "must be Slack user ids (U… or W…, as in a member's profile)",
    "allowed_usergroup": "must be a Slack user group id (S…)",
}


# Keys that hold secrets elsewhere: they are read from the environment only, never the file
# (monitor/flow.py reads the Slack ones, monitor/service/digest_job.py the SMTP password).
_SECRET_KEYS: dict[tuple[str, ...], str] = {
    ("digest", "smtp", "password"): "MONITOR_SMTP_PASSWORD",
    ("alerts", "slack", "token"): "SLACK_BOT_TOKEN",
    ("alerts", "slack", "bot_token"): "SLACK_BOT_TOKEN",
    ("alerts", "slack", "webhook"): "SLACK_WEBHOOK_URL",
    ("alerts", "slack", "webhook_url"): "SLACK_WEBHOOK_URL",
    ("alerts", "slack", "signing_secret"): "SLACK_SIGNING_SECRET",
    ("alerts", "slack", "app_token"): "SLACK_APP_TOKEN",
    ("web", "signing_secret"): "SLACK_SIGNING_SECRET",
}
# Bounds pydantic states as numbers ("less than or equal to 3600") said as durations.
_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
           "less_than_equal": ("le", "at most")}


def _describe(error: Any) -> str:
    """One line for one pydantic error: "feeds.bbc.interval: must be ..."."""
    loc = [_CONTROL.sub("?", str(part)) for part in error["loc"]]  # never echo a control character
    kind = error["type"]
    if kind == "extra_forbidden":
        secret = _SECRET_KEYS.get(tuple(loc))
        if secret:
            return f"{'.'.join(loc)}: secrets come from the environment: {secret}"
        return f"{'.'.join(loc)}: unknown key (check the spelling)"
    if kind == "missing":
        return f"{'.'.join(loc)}: required key is missing"
    if len(loc) >= 2 and loc[0] == "feeds" and loc[-1] == "[key]":
        return f"feeds.{loc[1]}: feed id must be letters, digits, '_', '-' or '.'"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not loc:  # a rule across sections names its keys itself
        return message
    if kind in _BOUNDS and loc[-1] in _DURATION_KEYS:
        bound, words = _BOUNDS[kind]
        message = f"must be {words} {describe_seconds(float(error['ctx'][bound]))}"
    if loc[-1] == "metrics_port" and kind in {"greater_than_equal", "less_than_equal"}:
        message = "must be a port number from 1 to 65535, or 0 to turn metrics off"
    if kind == "string_pattern_mismatch":
        message = _PATTERN_MESSAGES.get(loc[-1] if not loc[-1].isdigit() else loc[-2], message)
    return f"{'.'.join(loc)}: {message}"


def _types_in(annotation: object) -> Iterator[object]:
    yield annotation
    for arg in get_args(annotation):
        yield from _types_in(arg)


def _duration_keys(model: type[BaseModel]) -> frozenset[str]:
    """The names of every Duration key in the model and the tables under it."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        parts = [*info.metadata, *_types_in(info.annotation)]
        if any(getattr(part, "func", None) is parse_duration for part in parts):
            keys.add(name)
        for part in parts:
            if isinstance(part, type) and issubclass(part, BaseModel):
                keys |= _duration_keys(part)
    return frozenset(keys)


_DURATION_KEYS = _duration_keys(ConfigFile)


def _settings(path: Path, file: ConfigFile) -> Settings:
    base = path.resolve().parent
    data_dir = (base / file.monitor.data_dir).resolve()
    url = os.environ.get(DATABASE_ENV) or file.storage.url or f"sqlite:///{data_dir / 'monitor.db'}"
    where = DATABASE_ENV if os.environ.get(DATABASE_ENV) else "storage.url"
    database_url = _database_url(url, path, where)
    e = file.engine
    engine = resolve_engine(path, e.kind, e.broker_url, e.visibility_timeout, database_url, where)
    return Settings(path=path, file=file, database_url=database_url, data_dir=data_dir, engine=engine)


def _database_url(url: str, path: Path, where: str) -> str:
    """Check the database URL and pick the psycopg 3 driver for plain postgresql:// URLs."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(path, [f"{where}: not a database URL ({exc})"]) from exc
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(path, [f"{where}: only sqlite:/// and postgresql:// URLs are supported"])
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)
