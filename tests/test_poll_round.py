"""A round of polls (`Pipeline.poll_many`, as `monitor poll --once` runs it): connections kept
per host, the 304s' states written in batches, one summary line. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest

from monitor.ingest import poller
from monitor.ingest.fetch import Fetcher, FetchOptions
from monitor.ingest.poller import Pipeline
from monitor.types import Feed, FeedState, FeedStatus
from storage.repo import Repository

from feedserver import FeedServer, Request, Response

RSS = "application/rss+xml; charset=utf-8"


def _doc(n: int) -> bytes:
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
            f"<link>http://example.org/</link><item><guid>g{n}</guid><link>http://example.org/{n}</link>"
            f"<title>Story {n}</title></item></channel></rss>").encode()


def _conditional(n: int) -> Callable[[Request], Response]:
    etag = f'"v{n}"'

    def answer(request: Request) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(304, headers={"ETag": etag})
        return Response(200, _doc(n), {"Content-Type": RSS, "ETag": etag})
    return answer


@pytest.fixture
def servers() -> Iterator[list[FeedServer]]:
    """One host serving 6 feeds, then 30 hosts serving one feed each."""
    with ExitStack() as stack:
        yield [stack.enter_context(FeedServer()) for _ in range(31)]


def _feeds(servers: list[FeedServer]) -> list[Feed]:
    shared, others = servers[0], servers[1:]
    feeds = []
    for n in range(6):
        shared.route(f"/f{n}", _conditional(n))
        feeds.append(Feed(f"shared{n}", shared.url(f"/f{n}")))
    for n, server in enumerate(others, start=6):
        server.route("/feed", _conditional(n))
        feeds.append(Feed(f"single{n:02d}", server.url("/feed")))
    return feeds


def _pipeline(repo: Repository, fetcher: Fetcher) -> Pipeline:
    return Pipeline(repo, fetcher, rng=random.Random(3))


def test_feeds_of_one_host_share_its_connections_in_a_round(
    repo: Repository, servers: list[FeedServer]
) -> None:
    feeds = _feeds(servers)
    repo.sync_feeds(feeds)
    # The gap between starts to one host lets the other 30 hosts' connections pile up in the
    # pool meanwhile: the shared host's idle ones must still be there for its next feed.
    options = FetchOptions(per_host_delay=0.15, per_host_concurrency=2, total_timeout=5)
    with Fetcher(options) as fetcher:
        results = _pipeline(repo, fetcher).poll_many(feeds, workers=8)
    assert [r.new for r in results] == [1] * len(feeds)
    assert len(servers[0].requests) == 6
    assert servers[0].connections <= options.per_host_concurrency


def test_a_304_round_records_every_feed_state(
    repo: Repository, servers: list[FeedServer], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(poller, "STATE_BATCH", 7)  # several full batches and a partial one
    feeds = _feeds(servers)
    repo.sync_feeds(feeds)
    with Fetcher(FetchOptions(per_host_delay=0, per_host_concurrency=8)) as fetcher:
        pipeline = _pipeline(repo, fetcher)
        pipeline.poll_many(feeds, workers=8)
        first = repo.feed_states([f.id for f in feeds])
        before = datetime.now(UTC)
        # The first round's "poll ok" lines are captured too when an earlier test in this worker
        # left the root logger at INFO: only the second round is under test.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="monitor.ingest.poller"):
            results = pipeline.poll_many(feeds, workers=8)
    assert {r.http_status for r in results} == {304}
    after = repo.feed_states([f.id for f in feeds])
    for feed in feeds:
        state = after[feed.id]
        assert state.last_success is not None and state.last_success >= before, feed.id
        assert state.next_poll is not None and state.next_poll > state.last_success
        assert (state.status, state.etag) == (FeedStatus.OK, first[feed.id].etag)
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in lines] == ["poll round done"]
    counts = {key: getattr(lines[0], key) for key in ("feeds", "not_modified", "failed", "new")}
    assert counts == {"feeds": len(feeds), "not_modified": len(feeds), "failed": 0, "new": 0}


def test_a_304_that_ends_a_failure_streak_is_written_at_once(
    repo: Repository, servers: list[FeedServer]
) -> None:
    feeds = _feeds(servers)[:1]
    repo.sync_feeds(feeds)
    with Fetcher(FetchOptions(per_host_delay=0)) as fetcher:
        pipeline = _pipeline(repo, fetcher)
        pipeline.poll_many(feeds, workers=1)
        state = repo.feed_state(feeds[0].id)
        assert state is not None
        failing = FeedState(state.feed_id, state.url, FeedStatus.ERROR, etag=state.etag,
                            last_error="HTTP 500", consecutive_errors=3)
        repo.save_feed_state(failing)
        # Not held back with the timestamps: the status and the error count change too, and
        # the save happens inside the poll, before the round ends.
        seen: list[FeedState | None] = []
        pipeline.poll_many(feeds, workers=1, on_result=lambda _r: seen.append(repo.feed_state(feeds[0].id)))
    assert seen[0] is not None and (seen[0].status, seen[0].consecutive_errors) == (FeedStatus.OK, 0)
