"""Values exchanged between pipeline stages.

Frozen dataclasses only; this package imports nothing of ours so that `storage` and
`alerts` can depend on it without depending on the rest of `monitor`. One module per
stage of the flow; every name is re-exported here, so `from monitor.types import X` works.
"""

from __future__ import annotations

from monitor.types.alerts import (
    AlertContent,
    AlertHead,
    AlertIntent,
    AlertKind,
    AlertRef,
    AlertStatus,
    ArticleCopy,
    CopyRules,
    OutboxEntry,
    OutboxFacts,
    OutboxItem,
    OutboxRules,
)
from monitor.types.digest import (
    Digest,
    DigestArticle,
    DigestNarrative,
    DigestState,
    DigestStatus,
    FailingFeed,
    MatchedArticle,
    OpsFigures,
)
from monitor.types.feeds import (
    Article,
    ArticleOrigin,
    ArticleText,
    Clock,
    Feed,
    FeedReport,
    FeedState,
    FeedStatus,
    FetchResult,
    ParsedFeed,
    PollResult,
    StoredArticle,
    StoredCopy,
    StoreOutcome,
    utc_now,
)
from monitor.types.matching import (
    Match,
    Narrative,
    Scored,
    Tier,
)
from monitor.types.storage import PruneCounts, PrunePlan

__all__ = [
    "AlertContent",
    "AlertHead",
    "AlertIntent",
    "AlertKind",
    "AlertRef",
    "AlertStatus",
    "Article",
    "ArticleCopy",
    "ArticleOrigin",
    "ArticleText",
    "Clock",
    "CopyRules",
    "Digest",
    "DigestArticle",
    "DigestNarrative",
    "DigestState",
    "DigestStatus",
    "FailingFeed",
    "Feed",
    "FeedReport",
    "FeedState",
    "FeedStatus",
    "FetchResult",
    "Match",
    "MatchedArticle",
    "Narrative",
    "OpsFigures",
    "OutboxEntry",
    "OutboxFacts",
    "OutboxItem",
    "OutboxRules",
    "ParsedFeed",
    "PollResult",
    "PruneCounts",
    "PrunePlan",
    "Scored",
    "StoreOutcome",
    "StoredArticle",
    "StoredCopy",
    "Tier",
    "utc_now",
]
