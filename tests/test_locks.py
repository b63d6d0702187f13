"""PostgreSQL advisory locks: one holder at a time, and a killed holder lets go."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from storage.db import open_engine
from storage.locks import try_lock

HOLD = """
import sys, time
from storage.db import open_engine
from storage.locks import try_lock
with try_lock(open_engine(sys.argv[1]), "feed:a") as taken:
    print("held" if taken else "busy", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    engine = open_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_one_holder_at_a_time(pg: Engine) -> None:
    with try_lock(pg, "feed:a") as first:
        assert first
        with try_lock(pg, "feed:a") as second, try_lock(pg, "feed:b") as other:
            assert not second
            assert other
    with try_lock(pg, "feed:a") as again:
        assert again


@pytest.mark.postgres
def test_a_killed_holder_releases_its_lock(pg: Engine, postgres_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, postgres_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with try_lock(pg, "feed:a") as taken:
            assert not taken
        holder.kill()
        holder.wait(10)
        deadline = time.monotonic() + 10
        while True:  # PostgreSQL ends the session as soon as it sees the socket close
            with try_lock(pg, "feed:a") as taken:
                if taken:
                    break
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait(10)


def test_sqlite_has_no_advisory_locks(sqlite_engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="PostgreSQL"), try_lock(sqlite_engine, "feed:a"):
        pass
