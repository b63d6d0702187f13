"""Stories: articles from several outlets telling the same thing, followed across runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class WindowArticle:
    """An article as the story update reads it: in the window, or an older member of a live story."""

    article_id: int
    feed_id: str
    title: str
    lead: str  # the first passage (title and lead), the text the vector was made from
    url: str | None
    language: str | None
    published: datetime
    duplicate_of: int | None  # same text stored earlier under another URL
    in_window: bool  # older members of a story are counted, never clustered again
    seen: bool  # an earlier run clustered it (it has a story_articles row)
    story_id: int | None  # its story after the last run
    unit_id: int | None  # the article standing for it and its copies (None: not seen yet)


@dataclass(frozen=True)
class StoredStory:
    """What the update keeps of a story between runs besides its members."""

    id: int
    first_seen: datetime
    emerging_since: datetime | None
    merged_from: tuple[int, ...] = ()
    split_from: int | None = None
    promoted_to: str | None = None


@dataclass(frozen=True)
class MemberMatch:
    """A stored match of a story member: the nearest narrative comes from these."""

    article_id: int
    narrative_id: str
    score: float
    alert: bool  # at alert tier


@dataclass(frozen=True)
class StoryFacts:
    """What the emerging rule and the labels read besides the window."""

    carriers: frozenset[str]  # feeds with narrative matches in the carrier period
    matches: tuple[MemberMatch, ...]
    outlet_names: dict[str, str] = field(default_factory=dict)  # feed id -> display name


@dataclass(frozen=True)
class StoryState:
    """A story as one update leaves it: members, label, growth and whether it is emerging."""

    key: int  # the stored id, or a negative number for a story this update creates
    article_ids: tuple[int, ...]  # every member, copies included
    unit_ids: dict[int, int]  # member -> the article standing for its copies
    label: str  # the representative headline
    representative_id: int
    terms: tuple[str, ...]
    outlets: tuple[str, ...]  # outlet names of the independent sources
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    size: int  # member articles
    sources: int  # independent sources (copies collapsed)
    growth: int  # sources first published within the growth window
    first_seen: datetime
    last_seen: datetime  # the latest member's publication
    narrative_id: str | None
    narrative_score: float | None
    known_alert: bool  # its narrative already alerts: not emerging whatever it does
    emerging: bool
    emerging_since: datetime | None
    merged_from: tuple[int, ...] = ()
    split_from: int | None = None


@dataclass(frozen=True)
class StoryPlan:
    """Everything one update writes."""

    stories: tuple[StoryState, ...]
    seen: dict[int, tuple[int | None, int]]  # article -> (story key or None, unit article)
    absorbed: dict[int, int]  # stored story id -> the key of the story it merged into
    ended: tuple[int, ...] = ()  # stored stories left without members in the window
    posts: tuple[int, ...] = ()  # keys of stories that became emerging now (a Slack post each)


@dataclass(frozen=True)
class Story:
    """A stored story as `monitor stories`, the digest and the Slack post show it."""

    id: int
    label: str
    terms: tuple[str, ...]
    size: int
    sources: int
    outlets: tuple[str, ...]
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    urls: tuple[str, ...]
    narrative_id: str | None
    narrative_score: float | None
    emerging: bool
    growth: int
    first_seen: datetime
    last_seen: datetime
    status: str  # "active", "merged" (into `merged_into`) or "ended"
    merged_into: int | None = None
    merged_from: tuple[int, ...] = ()
    split_from: int | None = None
    promoted_to: str | None = None
    history: tuple[tuple[datetime, int], ...] = ()  # (hour, size), oldest first
    titles: tuple[str, ...] = ()  # member headlines, representative first
    articles: tuple[tuple[str, str | None], ...] = ()  # members' (title, url), earliest first
