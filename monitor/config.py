"""feeds.toml -> validated settings.

Every problem is reported at once, each with its key path and the file, and unknown keys
are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config_engine import EngineKind, EngineSettings, resolve_engine
from monitor.errors import ConfigError
from monitor.ingest.fetch import FetchOptions
from monitor.types import Feed

CONFIG_ENV = "MONITOR_CONFIG"
DATABASE_ENV = "MONITOR_DATABASE_URL"
DEFAULT_CONFIG = Path("feeds.toml")
MIN_INTERVAL = 60  # seconds; faster polling is impolite to publishers
# Chosen from bench/precision.py (CheckThat! claims vs. tweets and real news) on the fused score;
# see README "Alert precision".
DEFAULT_ALERT_THRESHOLD = 0.70
DEFAULT_WATCH_THRESHOLD = 0.58

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_SIZE = re.compile(r"(\d+)\s*([kmg]?b?)", re.IGNORECASE)
_FEED_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def parse_duration(value: object) -> float:
    """Seconds from 90, "90s", "15m", "1h30m" or "1d"."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"15m\", not a boolean")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration such as \"15m\" or a number of seconds")
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration (use e.g. \"90s\", \"15m\", \"1h30m\", \"1d\")")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_size(value: object) -> int:
    """Bytes from 1048576, "512KB" or "10MB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size (use e.g. \"10MB\" or a number of bytes)")
    unit = match.group(2).lower()
    return int(match.group(1)) * _SIZE_UNITS[unit if unit.endswith("b") or not unit else unit + "b"]


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonitorSection(_Strict):
    poll_interval: Duration = Field(900.0, ge=MIN_INTERVAL)
    data_dir: str = "data"
    max_concurrency: int = Field(16, ge=1, le=512)
    per_host_concurrency: int = Field(2, ge=1, le=64)
    per_host_delay: Duration = Field(1.0, ge=0)
    connect_timeout: Duration = Field(10.0, gt=0)
    timeout: Duration = Field(30.0, gt=0)
    max_body_size: Size = Field(10 * 1024 * 1024, ge=1024)
    retry_after_cap: Duration = Field(6 * 3600.0, ge=0)
    max_backoff: Duration = Field(86400.0, ge=MIN_INTERVAL, le=86400)
    reload_interval: Duration = Field(10.0, gt=0, le=60)
    user_agent: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # /metrics and /healthz of `monitor run`. Loopback by default: nothing outside the host
    # needs them unless a deployment says so (compose sets "0.0.0.0"). Port 0 turns them off.
    metrics_host: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9.:_-]+$")
    metrics_port: int = Field(9470, ge=0, le=65535)


class MatchingSection(_Strict):
    model: str = "all-MiniLM-L6-v2"  # any sentence-transformers name or local folder
    query_prompt: str | None = None  # prefixed to article passages (e5-style models)
    passage_prompt: str | None = None  # prefixed to narrative texts
    alert_threshold: float = Field(DEFAULT_ALERT_THRESHOLD, gt=0, le=1)
    watch_threshold: float = Field(DEFAULT_WATCH_THRESHOLD, gt=0, le=1)
    backfill_days: int = Field(7, ge=0, le=365)
    batch_size: int = Field(64, ge=1, le=4096)  # articles embedded together
    max_passages: int = Field(32, ge=1, le=256)  # per article; long articles are cut here
    # Short windows: a claim inside a long window is diluted by its neighbours (measured:
    # one claim among filler scored 0.65 in 64-token windows, 0.43 in 128, 0.29 in 256).
    passage_tokens: int = Field(64, ge=16, le=512)
    embed_interval: Duration = Field(10.0, gt=0, le=3600)  # how often `run` embeds new articles
    starter_narratives: bool = True  # load the shipped narratives into an empty database
    # score = cosine + lexical_weight x coverage of the narrative's terms; below lexical_floor
    # coverage a narrative reaches no tier (bench/precision.py measures both).
    lexical_weight: float = Field(0.2, ge=0, le=1)
    lexical_floor: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _watch_below_alert(self) -> MatchingSection:
        if self.watch_threshold > self.alert_threshold:
            raise ValueError("watch_threshold must not be above alert_threshold")
        return self


class RouteSection(_Strict):
    """Alerts about these feeds or narratives go to `channel` instead of the default one."""

    channel: str = Field(min_length=1)
    feed_ids: tuple[str, ...] = ()
    feed_tags: tuple[str, ...] = ()
    narrative_tags: tuple[str, ...] = ()


class SlackSection(_Strict):
    channel: str = Field("#narrative-alerts", min_length=1)
    api_url: str = Field("https://slack.com/api/", pattern=r"^https?://\S+$")
    routes: tuple[RouteSection, ...] = ()

    @field_validator("api_url")
    @classmethod
    def _ends_with_slash(cls, url: str) -> str:
        # slack-sdk appends the method name: ".../api" + "chat.postMessage" would 404.
        return url if url.endswith("/") else url + "/"


class AlertsSection(_Strict):
    flood_limit: int = Field(10, ge=1)  # alerts per narrative and channel per flood_window
    flood_window: Duration = Field(3600.0, ge=60)
    deliver_interval: Duration = Field(5.0, gt=0, le=600)  # how often `run` flushes the outbox
    near_duplicate: float = Field(0.95, gt=0, le=1)  # lead similarity that makes two articles one story
    slack: SlackSection = SlackSection()


class SmtpSection(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False  # implicit TLS (usually port 465) instead of STARTTLS
    username: str | None = None  # the password comes from MONITOR_SMTP_PASSWORD
    timeout: Duration = Field(30.0, gt=0)


class DigestSection(_Strict):
    time: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"
    recipients: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = ()
    sender: str = Field("narrative-monitor@localhost", pattern=r"^[^@\s]+@[^@\s]+$")
    subject: str = Field("Narrative Monitor digest for {date}", min_length=1)
    send_empty: bool = True  # an empty day still sends a short "nothing matched" digest
    top_articles: int = Field(5, ge=1, le=50)
    outbox_dir: str = "digests"  # without [digest.smtp], digests are written here (under data_dir)
    smtp: SmtpSection | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r} (use e.g. \"Europe/Berlin\")") from exc
        return name


class StorageSection(_Strict):
    url: str | None = None


class EngineSection(_Strict):
    """Where the work runs; checked against the environment in monitor/config_engine.py."""

    kind: EngineKind = "local"
    broker_url: str | None = None  # better in MONITOR_BROKER_URL: it may carry a password
    # Redis redelivers a task not acknowledged within this; longer than any one task must take.
    visibility_timeout: Duration = Field(3600.0, ge=1, le=7 * 86400)


class FeedSection(_Strict):
    url: str = Field(pattern=r"^https?://\S+$")
    name: str | None = None
    interval: Duration | None = Field(None, ge=MIN_INTERVAL)
    enabled: bool = True
    language: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")
    tags: tuple[str, ...] = ()


class ConfigFile(_Strict):
    monitor: MonitorSection = MonitorSection()
    storage: StorageSection = StorageSection()
    engine: EngineSection = EngineSection()
    matching: MatchingSection = MatchingSection()
    alerts: AlertsSection = AlertsSection()
    digest: DigestSection = DigestSection()
    feeds: dict[Annotated[str, Field(pattern=_FEED_ID)], FeedSection] = {}


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
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, [_describe(error) for error in exc.errors()]) from exc


_PATTERN_MESSAGES = {
    "url": "must be an http:// or https:// URL",
    "api_url": "must be an http:// or https:// URL",
    "time": "must be a time of day as HH:MM (24-hour)",
    "recipients": "must be an email address",
    "sender": "must be an email address",
    "metrics_host": "must be an IP address or host name (e.g. \"127.0.0.1\" or \"0.0.0.0\")",
}


def _describe(error: Any) -> str:
    """One line for one pydantic error: "feeds.bbc.interval: must be ..."."""
    loc = [str(part) for part in error["loc"]]
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{'.'.join(loc)}: unknown key (check the spelling)"
    if kind == "missing":
        return f"{'.'.join(loc)}: required key is missing"
    if len(loc) >= 2 and loc[0] == "feeds" and loc[-1] == "[key]":
        return f"feeds.{loc[1]}: feed id must be letters, digits, '_', '-' or '.'"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "greater_than_equal" and loc[-1] in {"interval", "poll_interval", "max_backoff"}:
        message = f"must be at least {int(error['ctx']['ge'])} seconds"
    if loc[-1] == "metrics_port" and kind in {"greater_than_equal", "less_than_equal"}:
        message = "must be a port number from 1 to 65535, or 0 to turn metrics off"
    if kind == "string_pattern_mismatch":
        message = _PATTERN_MESSAGES.get(loc[-1] if not loc[-1].isdigit() else loc[-2], message)
    return f"{'.'.join(loc)}: {message}"


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
