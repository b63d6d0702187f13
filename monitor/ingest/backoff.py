"""When to poll a feed next: its interval after a success, later after failures."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from alerts.retry import backoff_delay

# A server asking us to come back "now" (Retry-After: 0) still gets a minute's rest.
MIN_RETRY_AFTER = 60.0


def next_poll_after_success(now: datetime, interval: float) -> datetime:
    """The regular schedule."""
    return now + timedelta(seconds=interval)


def next_poll_after_failure(
    now: datetime,
    interval: float,
    consecutive_errors: int,
    max_backoff: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """Honour the server's Retry-After, else back off exponentially with jitter, capped.

    The first failure keeps the regular interval; each further one doubles it. The jitter
    (plus or minus 20%) keeps feeds that failed together from retrying together.
    """
    if retry_after is not None:
        return now + timedelta(seconds=max(retry_after, MIN_RETRY_AFTER))
    delay = backoff_delay(interval, consecutive_errors - 1, max_backoff, rng)
    return now + timedelta(seconds=min(max(delay, MIN_RETRY_AFTER), max_backoff))
