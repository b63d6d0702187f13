"""Read-only transactions, the in-process writer lock and bulk state reads (real SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, text

from monitor.types import Feed, FeedState, FeedStatus
from storage.db import reader
from storage.repo import Repository


def test_reads_do_not_wait_for_a_writer_in_another_thread(sqlite_engine: Engine) -> None:
    repo = Repository(sqlite_engine)
    repo.sync_feeds([Feed("a", "http://example.org/a")])
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with sqlite_engine.begin() as connection:  # BEGIN IMMEDIATE: holds the write lock
            connection.execute(text("UPDATE feeds SET name = 'x' WHERE id = 'a'"))
            holding.set()
            release.wait(10)

    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(writer)
        assert holding.wait(10)
        started = time.monotonic()
        state = repo.feed_state("a")  # a snapshot from before the writer's update
        assert time.monotonic() - started < 2
        release.set()
        done.result()
    assert state is not None and state.url == "http://example.org/a"


def test_writers_of_one_process_take_turns(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))

    def bump() -> None:
        for _ in range(20):
            with sqlite_engine.begin() as connection:
                n = connection.execute(text("SELECT n FROM counter")).scalar_one()
                connection.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(bump) for _ in range(8)]:
            future.result()
    with reader(sqlite_engine).connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 160


def test_a_failed_write_transaction_releases_the_lock(sqlite_engine: Engine) -> None:
    try:
        with sqlite_engine.begin() as connection:
            connection.execute(text("SELECT no_such_column FROM nowhere"))
    except Exception:
        pass
    with ThreadPoolExecutor(1) as pool:  # another thread would wait 30 s for a leaked lock
        future = pool.submit(lambda: sqlite_engine.begin().__enter__().close())
        future.result(timeout=5)


def test_feed_states_reads_every_synced_feed_at_once(repo: Repository) -> None:
    feeds = [Feed(f"f{i}", f"http://example.org/{i}") for i in range(3)]
    repo.sync_feeds(feeds)
    repo.save_feed_state(FeedState("f1", "http://example.org/1", FeedStatus.OK, etag='"v1"'))
    states = repo.feed_states(["f0", "f1", "f2", "unknown"])
    assert sorted(states) == ["f0", "f1", "f2"]
    assert states["f1"].etag == '"v1"' and states["f1"].status is FeedStatus.OK
    assert states["f0"] == repo.feed_state("f0")
