"""The sections of feeds.toml as pydantic models: types, defaults and bounds of every key."""

from __future__ import annotations

from string import Formatter
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.config.engine import EngineKind
from monitor.config.values import MAX_DURATION, Duration, Size

MIN_INTERVAL = 60  # seconds; faster polling is impolite to publishers
# Chosen from bench/precision.py (CheckThat! claims vs. tweets and real news) on the fused score;
# see README "Alert precision".
DEFAULT_ALERT_THRESHOLD = 0.70
DEFAULT_WATCH_THRESHOLD = 0.58
_FEED_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
HOUR = 3600.0  # the longest wait on one host or one exchange that still makes sense
# What monitor/service/digest_job.py fills into digest.subject with str.format.
SUBJECT_FIELDS = ("date",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonitorSection(_Strict):
    poll_interval: Duration = Field(900.0, ge=MIN_INTERVAL, le=MAX_DURATION)
    data_dir: str = "data"
    max_concurrency: int = Field(16, ge=1, le=512)
    per_host_concurrency: int = Field(2, ge=1, le=64)
    per_host_delay: Duration = Field(1.0, ge=0, le=HOUR)
    connect_timeout: Duration = Field(10.0, gt=0, le=HOUR)
    timeout: Duration = Field(30.0, gt=0, le=HOUR)
    max_body_size: Size = Field(10 * 1024 * 1024, ge=1024)
    max_items_per_poll: int = Field(1000, ge=1, le=1_000_000)  # new articles stored per poll, newest first
    retry_after_cap: Duration = Field(6 * 3600.0, ge=0, le=MAX_DURATION)
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
    # How the model runs (monitor.matching.backends): "auto" takes torch in bfloat16 on CPUs with
    # AMX and float32 ONNX elsewhere, the fastest that hold ranking quality on each. int8 ONNX is
    # faster still but lost 0.020 of CheckThat! MAP@5 (0.820 vs 0.840), so it is only a setting.
    backend: Literal["auto", "torch-bf16", "onnx", "onnx-int8", "torch"] = "auto"
    # The second route for every pair of texts that is not English and English
    # (monitor.matching.routes); "" turns it off.
    multilingual_model: Literal["use-multilingual-v3", ""] = "use-multilingual-v3"
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
    # A confirmed alert's evidence sentence becomes a learned example of its narrative.
    learn_from_confirmed: bool = True

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
    # Who may label alerts with the buttons: Slack user ids and/or one user group id. Both
    # empty: anyone in the channel. Others are told so, privately, and nothing is stored.
    allowed_users: tuple[Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,30}$")], ...] = ()
    allowed_usergroup: str | None = Field(None, pattern=r"^S[A-Z0-9]{2,30}$")

    @field_validator("api_url")
    @classmethod
    def _ends_with_slash(cls, url: str) -> str:
        # slack-sdk appends the method name: ".../api" + "chat.postMessage" would 404.
        return url if url.endswith("/") else url + "/"


class AlertsSection(_Strict):
    flood_limit: int = Field(10, ge=1, le=100_000)  # alerts per narrative and channel per flood_window
    flood_window: Duration = Field(3600.0, ge=60, le=MAX_DURATION)
    deliver_interval: Duration = Field(5.0, gt=0, le=600)  # how often `run` flushes the outbox
    near_duplicate: float = Field(0.95, gt=0, le=1)  # lead similarity that makes two articles one story
    slack: SlackSection = SlackSection()


class SmtpSection(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False  # implicit TLS (usually port 465) instead of STARTTLS
    username: str | None = None  # the password comes from MONITOR_SMTP_PASSWORD
    timeout: Duration = Field(30.0, gt=0, le=HOUR)


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

    @field_validator("subject")
    @classmethod
    def _known_fields(cls, subject: str) -> str:
        try:
            fields = [name for _, name, _, _ in Formatter().parse(subject) if name is not None]
        except ValueError as exc:  # a lone "{" or "}"
            raise ValueError(f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
                             ) from exc
        known = ", ".join(f"{{{name}}}" for name in SUBJECT_FIELDS)
        for name in fields:
            if name not in SUBJECT_FIELDS:
                raise ValueError(f"unknown field {{{name}}} (only {known} is filled in)")
        try:
            subject.format(**{name: "2026-01-01" for name in SUBJECT_FIELDS})
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"not a valid template ({exc})") from exc
        return subject

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r} (use e.g. \"Europe/Berlin\")") from exc
        return name


class StoriesSection(_Strict):
    """Stories told by several outlets (monitor/stories): clustering, emerging bar, Slack post."""

    enabled: bool = True  # `monitor run` and `poll --once` update stories
    window: Duration = Field(48 * 3600.0, ge=MIN_INTERVAL, le=30 * 86400)  # articles published this recently
    interval: Duration = Field(600.0, ge=10, le=86400)  # how often `monitor run` updates them
    # Cosine of leads (the multilingual half of a dual vector) at which two articles tell one
    # story, on average within a story; chosen with bench/stories.py.
    similarity: float = Field(0.55, gt=0, lt=1)
    min_outlets: int = Field(3, ge=2, le=1000)  # distinct outlets (copies collapsed) for a story
    growth_window: Duration = Field(6 * 3600.0, ge=MIN_INTERVAL, le=7 * 86400)
    min_growth: int = Field(3, ge=1, le=10_000)  # new independent sources within growth_window
    carrier_tags: tuple[str, ...] = ()  # feed tags of outlets known to carry narratives
    carrier_days: int = Field(30, ge=1, le=365)  # match history that makes an outlet a carrier
    carrier_min_matches: int = Field(1, ge=1, le=100_000)
    min_carrier_outlets: int = Field(1, ge=0, le=1000)  # carriers among the outlets of an emerging story
    slack_channel: str = ""  # post each story that becomes emerging here, once ("" : no post)


# Alerts, replies to copies and the stories window look back this far at article vectors
# (alerts.outbox_rules.SYNDICATION_WINDOW, alerts.planner's max_age): vectors must outlive it.
STORY_WINDOW = 2 * 86400.0
# The digest of a day reads that day, the day before and the chart's week: texts must outlive it.
MIN_RETENTION = 14 * 86400.0


class StorageSection(_Strict):
    url: str | None = None
    # Articles (texts), their matches and settled alerts older than this are pruned; 0 keeps them.
    retention: Duration = Field(90 * 86400.0, ge=0, le=MAX_DURATION)
    # Passage vectors are pruned sooner (~20 KB an article); 0 keeps them as long as the texts.
    vector_retention: Duration = Field(7 * 86400.0, ge=0, le=MAX_DURATION)
    prune_interval: Duration = Field(3600.0, ge=60, le=86400)  # how often `monitor run` prunes

    @field_validator("retention")
    @classmethod
    def _digest_window(cls, seconds: float) -> float:
        if 0 < seconds < MIN_RETENTION:
            raise ValueError("must be 0 (keep forever) or at least 14 days: the digest reads the "
                             "week before its day")
        return seconds

    @field_validator("vector_retention")
    @classmethod
    def _story_window(cls, seconds: float) -> float:
        if 0 < seconds < STORY_WINDOW:
            raise ValueError("must be 0 (as long as the texts) or at least 2 days: alerts and "
                             "replies to copies compare with the last 48 hours")
        return seconds

    @model_validator(mode="after")
    def _vectors_within_texts(self) -> StorageSection:
        if self.retention and self.vector_retention > self.retention:
            raise ValueError("vector_retention must not be longer than retention")
        return self


class EngineSection(_Strict):
    """Where the work runs; checked against the environment in monitor/config/engine.py."""

    kind: EngineKind = "local"
    broker_url: str | None = None  # better in MONITOR_BROKER_URL: it may carry a password
    # Redis redelivers a task not acknowledged within this; longer than any one task must take.
    visibility_timeout: Duration = Field(3600.0, ge=1, le=7 * 86400)


class WebSection(_Strict):
    """Where `monitor run` and `monitor serve` take Slack's clicks: POST /slack/interactions."""

    host: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9.:_-]+$")
    port: int = Field(9471, ge=0, le=65535)  # 0: no HTTP endpoint (Socket Mode still works)


class FeedSection(_Strict):
    url: str = Field(pattern=r"^https?://\S+$")
    name: str | None = None
    interval: Duration | None = Field(None, ge=MIN_INTERVAL, le=MAX_DURATION)
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
    web: WebSection = WebSection()
    stories: StoriesSection = StoriesSection()
    feeds: dict[Annotated[str, Field(pattern=_FEED_ID)], FeedSection] = {}

    @model_validator(mode="after")
    def _vectors_cover_backfill(self) -> ConfigFile:
        kept = self.storage.vector_retention or self.storage.retention
        if kept and kept < self.matching.backfill_days * 86400:
            raise ValueError(f"storage.vector_retention: must be at least matching.backfill_days "
                             f"({self.matching.backfill_days} days): a new narrative is matched "
                             "against the vectors of that many days")
        if kept and self.stories.enabled and kept < self.stories.window:
            raise ValueError("storage.vector_retention: must be at least stories.window: the story "
                             "update clusters the lead vectors of the whole window")
        return self


