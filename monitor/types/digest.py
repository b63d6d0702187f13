"""The daily digest, and the figures `monitor status` and /metrics report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.types.matching import Tier


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
    # Analysts' labels given in the 7 days ending with the period (current labels only).
    confirmed_week: int = 0
    false_alarms_week: int = 0


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
class DigestStory:
    """A story that became emerging, for the digest's "Emerging stories" section."""

    story_id: int
    label: str
    url: str | None  # the earliest member's article
    size: int
    outlets: tuple[str, ...]
    growth: int  # new independent sources within the growth window, at the last update
    languages: tuple[str, ...]
    narrative_id: str | None  # the nearest narrative: a variant of it
    still_emerging: bool


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
    # The channel's labels in the 7 days ending with the period: its measured precision.
    confirmed_week: int = 0
    false_alarms_week: int = 0

    @property
    def precision_week(self) -> float | None:
        """Confirmed among labelled alerts this week (None when nothing was labelled)."""
        labelled = self.confirmed_week + self.false_alarms_week
        return self.confirmed_week / labelled if labelled else None
    stories: tuple[DigestStory, ...] = ()  # emerging stories told during the period


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
