"""The time source every repository takes, so tests can fix it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)
