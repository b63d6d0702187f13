"""Moved: `Clock` and `utc_now` live in monitor.types. Kept until the last importers follow."""

from __future__ import annotations

from monitor.types import Clock, utc_now

__all__ = ["Clock", "utc_now"]
