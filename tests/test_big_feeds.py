"""Big feeds and failing storage (issue 13): bounded batches, a cap per poll, readers never
waiting for a writer, and a full disk reported by its real cause and in /healthz."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from monitor.ingest.fetch import Fetcher, FetchOptions
from monitor.ingest.poller import Pipeline
from monitor.service.http import make_server
from monitor.types import Article, Feed, FeedStatus, StoredArticle
from storage.db import open_engine, upgrade
from storage.repo import Repository
from storage.tables import ArticleSourceRow

from feedserver import FeedServer, Request, Response

RSS = "application/rss+xml"
DATE = "%a, %d %b %Y %H:%M:%S GMT"


def rss(count: int) -> bytes:
    """Items newest first, as feeds list them: item 0 is the newest."""
    items = "".join(
        f"<item><guid>g{n}</guid><link>https://example.org/{n}</link><title>Story {n}</title>"
        f"<description>Text {n}.</description>"
        f"<pubDate>{time.strftime(DATE, time.gmtime(1_790_000_000 - n * 60))}</pubDate>"
        "</item>"
        for n in range(count)
    )
    return f'<rss version="2.0"><channel><title>Big</title>{items}</channel></rss>'.encode()


def conditional(doc: bytes) -> Any:
    """A route answering 304 to If-None-Match "v1", else the document with that ETag."""
    def answer(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(304)
        return Response(200, doc, {"Content-Type": RSS, "ETag": '"v1"'})
    return answer


def make_pipeline(repo: Repository, fetcher: Fetcher, max_items: int) -> Pipeline:
    return Pipeline(repo, fetcher, rng=random.Random(7), max_items=max_items)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    options = FetchOptions(per_host_delay=0, total_timeout=10, connect_timeout=2)
    with Fetcher(options) as fetcher:
        yield fetcher


def guids(repo: Repository) -> list[str]:
    return sorted(article.guid for _, article in repo.articles())


def test_new_items_over_the_cap_wait_for_the_next_polls(
    engine: Engine, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.route("/big", conditional(rss(250)))
    pipeline = make_pipeline(Repository(engine, batch=40), fetcher, max_items=100)
    feed = Feed("big", feed_server.url("/big"))
    first = pipeline.poll_feed(feed)
    assert (first.status, first.new) == (FeedStatus.OK, 100)
    assert first.warning == "150 new item(s) over max_items_per_poll left for the next poll"
    assert guids(pipeline.repo) == sorted(f"g{n}" for n in range(100))  # the newest first
    state = pipeline.repo.feed_state("big")
    assert state is not None and state.etag is None  # so the next poll fetches it all again
    second = pipeline.poll_feed(feed, force=True)
    assert (second.new, second.unchanged) == (100, 100)
    third = pipeline.poll_feed(feed, force=True)
    assert (third.new, third.unchanged, third.warning) == (50, 200, None)
    assert pipeline.repo.article_count() == 250
    fourth = pipeline.poll_feed(feed, force=True)
    assert fourth.http_status == 304  # all stored: the validators were kept this time
    sent = [r.headers.get("if-none-match") for r in feed_server.requests_to("/big")]
    assert sent == [None, None, None, '"v1"']


class _CrashingRepository(Repository):
    """Dies while storing its `crash_at`-th article, as a killed process would."""

    def __init__(self, engine: Engine, batch: int, crash_at: int) -> None:
        super().__init__(engine, batch=batch)
        self.crash_at, self.calls = crash_at, 0

    def _store_one(self, session: Session, article: Article, copies: Any) -> StoredArticle:
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("killed")
        return super()._store_one(session, article, copies)


def test_a_crash_between_batches_neither_loses_nor_duplicates(
    engine: Engine, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.route("/big", conditional(rss(120)))
    feed = Feed("big", feed_server.url("/big"))
    crashing = _CrashingRepository(engine, batch=50, crash_at=60)  # in the second batch
    result = make_pipeline(crashing, fetcher, max_items=1000).poll_feed(feed)
    assert result.status is FeedStatus.ERROR and "killed" in (result.error or "")
    repo = Repository(engine, batch=50)
    assert repo.article_count() == 50  # the first batch is kept
    state = repo.feed_state("big")
    assert state is not None and state.etag is None  # the state was not written
    again = make_pipeline(repo, fetcher, max_items=1000).poll_feed(feed, force=True)
    assert (again.status, again.new, again.unchanged) == (FeedStatus.OK, 70, 50)
    assert guids(repo) == sorted(f"g{n}" for n in range(120))
    with Session(engine) as session:
        assert len(session.scalars(select(ArticleSourceRow)).all()) == 120


def test_batches_leave_the_write_lock_to_others_between_them(sqlite_engine: Engine) -> None:
    """Another writer gets in between two batches of one big store (SQLite: one writer at a time)."""
    repo = Repository(sqlite_engine, batch=100)
    repo.sync_feeds([Feed("big", "https://example.org/big"), Feed("other", "https://example.org/o")])
    commits: list[str] = []

    @event.listens_for(sqlite_engine, "commit")
    def seen(connection: Any) -> None:
        commits.append("commit")

    from datetime import UTC, datetime

    from monitor.ingest.dedup import guid_hash
    from monitor.types import FeedState

    now = datetime.now(UTC)
    articles = [Article("big", f"g{n}", guid_hash(f"g{n}"), f"https://example.org/{n}", f"t{n}", "x",
                        None, None, now, now, f"h{n}") for n in range(350)]
    repo.record_success(FeedState("big", "https://example.org/big", FeedStatus.OK), articles)
    event.remove(sqlite_engine, "commit", seen)
    assert len(commits) == 4  # 100 + 100 + 100 + 50, the state with the last
    assert repo.article_count() == 350
    state = repo.feed_state("big")
    assert state is not None and state.status is FeedStatus.OK


# --- read commands while a poll writes ---------------------------------------------------------


def test_read_commands_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """`monitor status` and `feeds list` answer while another process holds SQLite's write lock."""
    database = tmp_path / "monitor.db"
    engine = open_engine(f"sqlite:///{database}")
    upgrade(engine)
    Repository(engine).sync_feeds([Feed("wire", "https://example.org/wire")])
    engine.dispose()
    config = tmp_path / "feeds.toml"
    config.write_text('[monitor]\nmetrics_port = 0\n\n[feeds.wire]\nurl = "https://example.org/wire"\n',
                      encoding="utf-8")
    env = {**os.environ, "MONITOR_DATABASE_URL": f"sqlite:///{database}", "COLUMNS": "200"}
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # what a poll's write transaction holds
    writer.execute("UPDATE feeds SET status = 'ok'")
    try:
        for command in (["status", "--json"], ["feeds", "list", "--json"]):
            started = time.monotonic()
            argv = [sys.executable, "-m", "monitor.cli.main", "--config", str(config), *command]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert time.monotonic() - started < 20  # the busy timeout is 30 s
            assert "locked" not in done.stderr
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# --- a full disk ---------------------------------------------------------------------------------


def _fill_the_disk(engine: Engine) -> None:
    """Every new connection may not grow the SQLite file (a full disk, as SQLite sees it)."""
    engine.dispose()

    @event.listens_for(engine, "connect")
    def full(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()


def _make_read_only(engine: Engine) -> None:
    """PostgreSQL refusing every write (SQLSTATE 25006), as a storage failure the same way."""
    engine.dispose()

    @event.listens_for(engine, "connect")
    def read_only(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        dbapi_connection.commit()


def _healthz(server_address: tuple[str, int]) -> tuple[int, dict[str, Any]]:
    url = f"http://{server_address[0]}:{server_address[1]}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_full_disk_is_reported_by_its_cause_and_turns_health_red(
    engine: Engine, fetcher: Fetcher, feed_server: FeedServer
) -> None:
    items = "".join(f"<item><guid>g{n}</guid><title>Story {n}</title><description>{'word ' * 400}{n}"
                    "</description></item>" for n in range(60))
    doc = f'<rss version="2.0"><channel><title>Big</title>{items}</channel></rss>'.encode()
    feed_server.route("/feed", Response(200, doc, {"Content-Type": RSS}))
    repo = Repository(engine)
    feed = Feed("full", feed_server.url("/feed"))
    repo.sync_feeds([feed])
    with make_server(engine, "127.0.0.1", 0, lambda: True, lambda: [feed]) as server:
        assert _healthz(server.address)[0] == 200
        sqlite = engine.dialect.name == "sqlite"
        _fill_the_disk(engine) if sqlite else _make_read_only(engine)
        result = make_pipeline(repo, fetcher, max_items=1000).poll_feed(feed)
        cause = "database or disk is full" if sqlite else "cannot execute INSERT in a read-only transaction"
        assert result.status is FeedStatus.ERROR
        assert result.error == f"storage error: store articles: {cause}"
        if sqlite:  # an UPDATE in place still fits: the feed shows the cause
            state = repo.feed_state("full")
            assert state is not None and state.last_error == result.error
        status, health = _healthz(server.address)
        assert status == 503 and health["status"] == "unhealthy"
        assert health["checks"]["database"] == {"ok": True}  # SELECT 1 still answers
        assert health["checks"]["storage"]["ok"] is False
        # The latest failed write: on PostgreSQL the feed's state could not be saved either.
        latest = cause if sqlite else "in a read-only transaction"
        assert health["checks"]["storage"]["error"].startswith("writes failing: ")
        assert latest in health["checks"]["storage"]["error"]


def test_poll_once_honours_max_items_per_poll(
    tmp_path: Path, database_url: str, feed_server: FeedServer
) -> None:
    feed_server.route("/big", conditional(rss(50)))
    config = tmp_path / "feeds.toml"
    config.write_text('[monitor]\nper_host_delay = "0s"\nmax_items_per_poll = 20\n\n[matching]\n'
                      'model = "hashing"\nstarter_narratives = false\n\n'
                      f'[feeds.big]\nurl = "{feed_server.url("/big")}"\n', encoding="utf-8")
    env = {**os.environ, "MONITOR_DATABASE_URL": database_url, "COLUMNS": "200"}
    command = [sys.executable, "-m", "monitor.cli.main", "--config", str(config), "poll", "--once"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "20 new article(s)" in done.stdout
    assert "30 new item(s) over max_items_per_poll left for the next poll" in done.stderr
