"""Per-host politeness: a cap on requests in flight and a minimum gap between starts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class _HostState:
    in_flight: int = 0
    next_start: float = 0.0  # time.monotonic() before which no request may start


class HostGate:
    """Per host: at most `concurrency` requests in flight, starts at least `delay` s apart."""

    def __init__(self, concurrency: int, delay: float) -> None:
        self._concurrency = max(1, concurrency)
        self._delay = max(0.0, delay)
        self._cond = threading.Condition()
        self._hosts: dict[str, _HostState] = {}

    @contextmanager
    def slot(self, host: str) -> Iterator[float]:
        """Hold one of `host`'s slots; yields the seconds spent waiting for it."""
        began = time.monotonic()
        start = self._reserve(host)
        try:
            # Sleep outside the lock, so that requests to other hosts go on meanwhile.
            time.sleep(max(0.0, start - time.monotonic()))
            yield time.monotonic() - began
        finally:
            self._release(host)

    def _reserve(self, host: str) -> float:
        """Take a slot and book the earliest start time that keeps the gap."""
        with self._cond:
            # Look the state up again after each wait: _release may have dropped it.
            while (state := self._hosts.setdefault(host, _HostState())).in_flight >= (
                self._concurrency
            ):
                self._cond.wait()
            state.in_flight += 1
            start = max(time.monotonic(), state.next_start)
            state.next_start = start + self._delay
            return start

    def _release(self, host: str) -> None:
        with self._cond:
            state = self._hosts[host]
            state.in_flight -= 1
            if state.in_flight == 0 and state.next_start <= time.monotonic():
                del self._hosts[host]  # idle and past its gap: nothing left to remember
            self._cond.notify_all()
