"""Values exchanged between pipeline stages.

Frozen dataclasses only; this module imports nothing of ours so that `storage` and
`alerts` can depend on it without depending on the rest of `monitor`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: `monitor --help` must not wait for numpy
    import numpy as np
    from numpy.typing import NDArray

Clock = Callable[[], datetime]  # every repository and service takes one, so tests can fix time


def utc_now() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Feed:
    """A feed as configured in feeds.toml."""

    id: str
    url: str
    name: str | None = None
    interval: int = 900  # seconds
    enabled: bool = True
    language: str | None = None
    tags: tuple[str, ...] = ()


class FeedStatus(StrEnum):
    NEW = "new"  # configured, never polled
    OK = "ok"
    ERROR = "error"  # failing, backing off, still polled
    GONE = "gone"  # the server answered 410: not polled until the URL changes
    DISABLED = "disabled"  # enabled = false in feeds.toml
    REMOVED = "removed"  # no longer in feeds.toml; its articles are kept


@dataclass(frozen=True)
class FeedState:
    """What we remember about a feed between polls."""

    feed_id: str
    url: str  # the URL polled now: the configured one, or where a 301/308 sent us
    status: FeedStatus = FeedStatus.NEW
    etag: str | None = None
    last_modified: str | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_errors: int = 0
    next_poll: datetime | None = None


@dataclass(frozen=True)
class FeedReport:
    """One line of `monitor feeds list`."""

    id: str
    url: str
    status: FeedStatus
    last_success: datetime | None
    last_error: str | None
    consecutive_errors: int
    next_poll: datetime | None
    article_count: int


@dataclass(frozen=True)
class FetchResult:
    """A feed document as the server answered it.

    `body` is empty when the server said 304 Not Modified.
    """

    url: str  # the URL finally answered, after redirects
    status: int
    body: bytes
    headers: Mapping[str, str]
    etag: str | None
    last_modified: str | None
    permanent_url: str | None = None  # set when 301/308 moved the feed for good
    fetched_at: datetime | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Article:
    """A normalised feed entry, ready to store."""

    feed_id: str
    guid: str
    guid_hash: str
    url: str | None  # canonical: absolute, tracking parameters removed
    title: str
    text: str
    author: str | None
    language: str | None
    published: datetime  # aware UTC
    fetched: datetime  # aware UTC
    content_hash: str


@dataclass(frozen=True)
class ParsedFeed:
    """What the parser made of one document."""

    title: str | None
    articles: tuple[Article, ...]
    warning: str | None = None  # set for an ill-formed (bozo) document that still had entries


class StoreOutcome(StrEnum):
    NEW = "new"
    UPDATED = "updated"  # same guid, changed content
    UNCHANGED = "unchanged"  # seen before in this feed
    DUPLICATE = "duplicate"  # stored already under the same URL, or identical text


@dataclass(frozen=True)
class StoredArticle:
    """An article as stored, with the outcome of storing it."""

    id: int
    outcome: StoreOutcome
    duplicate_of: int | None = None


@dataclass(frozen=True)
class StoredCopy:
    """An article stored as a copy of an earlier one: the same URL, or the same text."""

    original_id: int  # the article it copies
    article_id: int  # itself (the original's id when only its URL was seen again)
    feed_id: str  # the outlet that carried the copy


@dataclass(frozen=True)
class ArticleText:
    """What the matching stage embeds of a stored article."""

    id: int
    title: str
    text: str


@dataclass(frozen=True)
class ArticleOrigin:
    """The feed an article was first stored from, and when it was published."""

    feed_id: str
    published: datetime


@dataclass(frozen=True)
class PollResult:
    """The outcome of polling one feed through the pipeline."""

    feed_id: str
    url: str
    status: FeedStatus
    http_status: int | None = None
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    unchanged: int = 0
    error: str | None = None
    warning: str | None = None
    new_article_ids: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Narrative:
    """A documented, debunked claim that analysts want to hear about when it resurfaces."""

    id: str
    title: str  # the claim, one sentence
    summary: str = ""
    examples: tuple[str, ...] = ()  # other phrasings, any language
    keywords: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    url: str | None = None  # where it is documented (and debunked)
    threshold: float | None = None  # overrides [matching] alert_threshold for this narrative
    enabled: bool = True
    disproof: str = ""


class Tier(StrEnum):
    ALERT = "alert"  # worth interrupting an analyst now
    WATCH = "watch"  # worth a line in the daily digest


@dataclass(frozen=True)
class Scored:
    """One narrative's best score over an article's passages."""

    narrative_id: str
    score: float
    passage_index: int


@dataclass(frozen=True)
class Match:
    """An article that repeats a narrative, with the evidence."""

    article_id: int
    narrative_id: str
    score: float
    tier: Tier
    passage: str  # the passage that scored best
    evidence: str  # its sentence closest to the narrative


class AlertKind(StrEnum):
    ALERT = "alert"  # a new article repeats a narrative
    REPLY = "reply"  # the same story from another outlet: a threaded "also published by"
    SUMMARY = "summary"  # the alerts the flood guard held back, in one message
    TEST = "test"  # `monitor alerts test`


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a deliverer; pending again when its lease runs out
    SENT = "sent"
    FAILED = "failed"  # Slack refused it for good (bad channel, bad token ...)
    HELD = "held"  # over the flood limit: listed in a summary instead
    MERGED = "merged"  # a reply folded into its parent (webhooks cannot thread)


@dataclass(frozen=True)
class AlertIntent:
    """An alert to write to the outbox together with the match that caused it."""

    kind: AlertKind
    channel: str
    article_id: int
    narrative_id: str
    parent_key: str | None = None  # replies: the key of the alert they answer
    feed_id: str | None = None  # replies: the outlet that also published the story

    @property
    def key(self) -> str:
        """What makes this alert unique: one per (story, narrative, channel)."""
        if self.kind is AlertKind.REPLY:
            return f"reply:{self.parent_key}:{self.article_id}:{self.feed_id}"
        return f"alert:{self.article_id}:{self.narrative_id}:{self.channel}"


@dataclass(frozen=True)
class OutboxEntry:
    """One complete outbox write, as the alert rules decided it; storage persists it as is.

    Storage skips an entry whose key exists, and a reply whose parent key is not stored.
    """

    key: str
    kind: AlertKind
    channel: str
    status: AlertStatus
    due: datetime  # when it may first be delivered
    created_at: datetime
    article_id: int | None = None
    narrative_id: str | None = None
    parent_key: str | None = None  # replies: the alert they answer
    feed_id: str | None = None  # replies: the outlet that also published the story


@dataclass(frozen=True)
class ArticleCopy:
    """A stored copy of an article: one of its other sources, or a same-text duplicate."""

    article_id: int
    feed_id: str


@dataclass(frozen=True)
class AlertRef:
    """An alert in the outbox, as a reply to it needs it."""

    key: str
    channel: str
    narrative_id: str | None


@dataclass(frozen=True)
class AlertHead:
    """A recent alert of a narrative with its article's first-passage vector (one story test)."""

    key: str
    channel: str
    article_id: int
    vector: NDArray[np.float32]


class OutboxFacts(Protocol):
    """What the alert rules may read from the outbox, inside the transaction that writes."""

    def exists(self, key: str) -> bool:
        """Whether an entry with this key is stored."""
        ...

    def alert_count(self, narrative_id: str, channel: str, since: datetime,
                    statuses: frozenset[AlertStatus]) -> int:
        """Alerts of a narrative on a channel created at or after `since`, in these statuses."""
        ...

    def feed_of(self, article_id: int) -> str | None:
        """The feed the article was first stored from."""
        ...

    def copies_of(self, article_id: int) -> list[ArticleCopy]:
        """Every source of the article (its own feed too), then articles that repeat its text."""
        ...

    def alerts_of(self, article_id: int, since: datetime) -> list[AlertRef]:
        """Alerts (not replies or summaries) about the article created at or after `since`."""
        ...


# The rules storage runs inside its transaction: facts and "now" in, complete writes out.
OutboxRules = Callable[[Sequence[AlertIntent], OutboxFacts, datetime], list[OutboxEntry]]
CopyRules = Callable[[StoredCopy, OutboxFacts, datetime], list[OutboxEntry]]


@dataclass(frozen=True)
class OutboxItem:
    """One message waiting in the outbox."""

    id: int
    key: str
    kind: AlertKind
    channel: str
    status: AlertStatus
    attempts: int
    article_id: int | None
    narrative_id: str | None
    parent_id: int | None
    feed_id: str | None
    created_at: datetime
    ts: str | None = None


@dataclass(frozen=True)
class AlertContent:
    """Everything a Slack alert shows, gathered from the stored match."""

    narrative_id: str
    narrative_title: str
    narrative_summary: str
    narrative_url: str | None
    article_title: str
    article_url: str | None
    outlet: str
    language: str | None
    published: datetime
    score: float
    tier: str
    evidence: str
    also_published_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class DigestArticle:
    """One article under a narrative in the daily digest."""

    title: str
    url: str | None
    outlet: str
    published: datetime
    score: float
    tier: str  # "alert" or "watch"
    evidence: str


@dataclass(frozen=True)
class DigestNarrative:
    """What one narrative did during the digest's period."""

    narrative_id: str
    title: str
    url: str | None
    articles: int  # distinct articles matched in the period
    outlets: int  # distinct feeds those articles came from
    alerts: int  # of which at alert tier
    previous_day: int  # articles matched the day before the period
    week_average: float  # mean articles per day over the 7 days before the period
    first_seen: bool  # never matched before this period
    top: tuple[DigestArticle, ...]  # best scores first


@dataclass(frozen=True)
class FailingFeed:
    """A feed that has been failing, for the digest's health section."""

    feed_id: str
    name: str
    url: str
    last_error: str
    consecutive_errors: int
    last_success: datetime | None


@dataclass(frozen=True)
class Digest:
    """Everything one digest email shows."""

    start: datetime  # aware; the period is [start, end)
    end: datetime
    timezone: str
    narratives: tuple[DigestNarrative, ...]  # most articles first
    failing_feeds: tuple[FailingFeed, ...]
    days: tuple[str, ...]  # the chart's 7 days, "YYYY-MM-DD", oldest first, ending with the period
    daily: Mapping[str, tuple[int, ...]]  # narrative title -> articles matched on each of `days`


@dataclass(frozen=True)
class MatchedArticle:
    """One match with its article, feed and narrative: a row the digest is built from."""

    narrative_id: str
    narrative_title: str
    narrative_url: str | None
    article_id: int
    feed_id: str
    outlet: str
    title: str
    url: str | None
    published: datetime
    score: float
    tier: Tier
    evidence: str


class DigestStatus(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # nothing matched and empty digests are not sent
    FAILED = "failed"  # retried until it goes out


@dataclass(frozen=True)
class DigestState:
    """How the most recent digest period went."""

    period: str  # "YYYY-MM-DD", local day
    status: DigestStatus
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class OpsFigures:
    """The database's operational figures, for /metrics and `monitor status`."""

    feeds: Mapping[str, int]  # FeedStatus value -> feeds (every status present, zeros included)
    failing_feeds: int  # enabled feeds whose last poll failed
    last_poll: datetime | None  # the latest poll of any feed, successful or not
    articles: int  # stored articles
    matches: Mapping[str, int]  # Tier value -> matches
    alerts: Mapping[str, int]  # AlertStatus value -> outbox messages
    last_digest: DigestState | None  # the latest period attempted
    last_digest_sent: datetime | None
