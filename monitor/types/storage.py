"""What pruning is asked to do and what it did (monitor.service.retention plans, storage.retention runs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PrunePlan:
    """Cut-off moments; None keeps that kind of row.

    Articles fetched before `texts_before` go with their matches and vectors, and passage
    vectors of articles fetched before `vectors_before`, except what is still needed: articles
    published at or after `keep_published_since` (digest days that failed, the backfill
    window), articles an alert row refers to, the article of each narrative's first match;
    vectors of articles published at or after `backfill_since` or alerted on at or after
    `keep_alerted_since`. Settled alerts
    created before `alerts_before` go unless a reply that stays hangs under them. The keys
    that de-duplicate feed items (feed, guid) are never pruned.
    """

    texts_before: datetime | None
    vectors_before: datetime | None
    alerts_before: datetime | None
    keep_published_since: datetime | None
    backfill_since: datetime
    keep_alerted_since: datetime
    batch: int = 1000


@dataclass(frozen=True)
class PruneCounts:
    """Rows pruned, by table."""

    articles: int = 0
    matches: int = 0
    passages: int = 0
    alerts: int = 0
