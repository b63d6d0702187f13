"""Alert intents, the outbox's rows and the rules' view of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from monitor.types.feeds import StoredCopy

if TYPE_CHECKING:  # annotations only: `monitor --help` must not wait for numpy
    import numpy as np
    from numpy.typing import NDArray


class AlertKind(StrEnum):
    ALERT = "alert"  # a new article repeats a narrative
    REPLY = "reply"  # the same story from another outlet: a threaded "also published by"
    SUMMARY = "summary"  # the alerts the flood guard held back, in one message
    TEST = "test"  # `monitor alerts test`
    STORY = "story"  # a story crossed the emerging bar (monitor.stories)


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a deliverer; pending again when its lease runs out
    SENT = "sent"
    FAILED = "failed"  # Slack refused it for good (bad channel, bad token ...)
    HELD = "held"  # over the flood limit: listed in a summary instead
    MERGED = "merged"  # a reply folded into its parent (webhooks cannot thread)
    SUPPRESSED = "suppressed"  # held back by analysts: a false alarm, or its narrative muted


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
    story_id: int | None = None  # kind STORY: the emerging story


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

    def false_alarmed(self, article_id: int, narrative_id: str) -> bool:
        """Whether an alert about the article on the narrative is labelled a false alarm now."""
        ...

    def muted(self, narrative_id: str, now: datetime) -> bool:
        """Whether the narrative is muted at `now`."""
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
    story_id: int | None = None


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
