"""Feeds, their polling state, and the articles they deliver."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

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

    id: int | None  # None: an item seen before whose article was pruned; only its key is left
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
