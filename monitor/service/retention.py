"""Retention: what may be pruned now, from [storage] and the facts that say what is still needed.

`monitor run` prunes every [storage] prune_interval (in both engines: the scheduler process
does it, not the workers); `monitor storage prune` runs the same function by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from alerts.digest_build import reads_from
from alerts.outbox_rules import SYNDICATION_WINDOW
from monitor.config import Settings
from monitor.types import DigestStatus, PruneCounts, PrunePlan, utc_now
from storage.digest_repo import DigestStore
from storage.retention import prune

log = logging.getLogger("monitor.service.retention")

_DONE = (DigestStatus.SENT, DigestStatus.SKIPPED)


def prune_plan(settings: Settings, digests: Mapping[str, DigestStatus], now: datetime) -> PrunePlan:
    """The cut-offs for `now`: [storage] retention and vector_retention, and what must stay."""
    storage, matching = settings.file.storage, settings.file.matching
    texts_before = now - timedelta(seconds=storage.retention) if storage.retention else None
    vectors = storage.vector_retention or storage.retention
    alerts_before = None
    if texts_before is not None:
        # The flood limit counts alerts over flood_window, replies look for alerts of 48 hours.
        flood = timedelta(seconds=settings.file.alerts.flood_window)
        alerts_before = min(texts_before, now - flood, now - SYNDICATION_WINDOW)
    backfill_since = now - timedelta(days=matching.backfill_days)
    unsent = digest_needs(digests, settings.file.digest.timezone)
    return PrunePlan(
        texts_before=texts_before,
        vectors_before=now - timedelta(seconds=vectors) if vectors else None,
        alerts_before=alerts_before,
        keep_published_since=min(backfill_since, unsent) if unsent else backfill_since,
        backfill_since=backfill_since,
        keep_alerted_since=now - SYNDICATION_WINDOW,
    )


def digest_needs(digests: Mapping[str, DigestStatus], timezone: str) -> datetime | None:
    """From when on articles are read by digests that failed and were not sent since; None: none.

    The next digest the scheduler sends (yesterday's) reads 8 days back, within the shortest
    retention allowed; a failed day waits, however old, for `monitor digest send --date`.
    """
    failed = [date.fromisoformat(key) for key, status in digests.items() if status not in _DONE]
    return reads_from(min(failed), timezone) if failed else None


def prune_now(settings: Settings, engine: Engine, clock: Callable[[], datetime] = utc_now) -> PruneCounts:
    """Prune what the configured retention lets go; the rows deleted."""
    plan = prune_plan(settings, DigestStore(engine).periods(), clock())
    counts = prune(engine, plan)
    if any(asdict(counts).values()):
        log.info("old rows pruned", extra=asdict(counts))
    return counts
