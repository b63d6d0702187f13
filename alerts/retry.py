"""When to try again: the Retry-After header and jittered exponential backoff.

One copy for every caller: the Slack deliverer and the feed poller both back off with
`backoff_delay`, and the fetcher and the Slack senders both read Retry-After with
`retry_after_seconds`. It lives in `alerts/` because `alerts/` may import only
`monitor.types` and `monitor.errors`, while `monitor` may import `alerts`; the module is pure
(standard library only), so importing it costs the feed side nothing.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# RFC 9110 allows whole seconds; a decimal fraction is read too rather than thrown away.
_SECONDS = re.compile(r"-?\d+(?:\.\d+)?")
JITTER = 0.2  # plus or minus 20%: callers that failed together do not retry together


def retry_after_seconds(value: str | None, now: datetime, cap: float = math.inf) -> float | None:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date), within [0, cap].

    None when the value is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # HTTP dates are GMT
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap)


def backoff_delay(base: float, attempt: int, cap: float, rng: random.Random | None = None) -> float:
    """`base` doubled `attempt` times, capped at `cap`, then jittered by plus or minus 20%."""
    delay = min(base * 2.0 ** min(max(attempt, 0), 32), cap)
    return delay * (rng or random).uniform(1 - JITTER, 1 + JITTER)
