"""poll_feed end to end: a loopback HTTP server, the real fetcher and parser, SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.ingest.fetch import Fetcher, FetchOptions
from monitor.ingest.poller import Pipeline
from monitor.types import Feed, FeedStatus
from storage.repo import Repository

from feedserver import FeedServer, Request, Response

RSS = "application/rss+xml; charset=utf-8"


def rss(*items: tuple[str | None, str, str], encoding: str = "utf-8") -> bytes:
    """An RSS 2.0 document; items are (guid, link, title)."""
    body = "".join(
        "<item>"
        + (f"<guid>{guid}</guid>" if guid else "")
        + f"<link>{link}</link><title>{title}</title>"
        f"<description>&lt;p&gt;{title}: the full story.&lt;/p&gt;</description>"
        "<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>"
        for guid, link, title in items
    )
    doc = (f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
           f"<title>Test feed</title><link>http://example.org/</link>{body}</channel></rss>")
    return doc.encode(encoding)


@pytest.fixture
def pipeline(repo: Repository) -> Iterator[Pipeline]:
    options = FetchOptions(per_host_delay=0, total_timeout=2, connect_timeout=1,
                           max_body_bytes=200_000, per_host_concurrency=8)
    with Fetcher(options) as fetcher:
        yield Pipeline(repo, fetcher, max_backoff=86400, rng=random.Random(7))


def feed(server: FeedServer, path: str, feed_id: str = "f", interval: int = 600) -> Feed:
    return Feed(feed_id, server.url(path), interval=interval)


def seconds_until(moment: datetime | None) -> float:
    assert moment is not None
    return (moment - datetime.now(UTC)).total_seconds()


def test_poll_stores_new_articles_then_uses_conditional_get(
    pipeline: Pipeline, feed_server: FeedServer
) -> None:
    doc = rss(("1", "/a?utm_source=x", "First"), ("2", "/b", "Second"))
    feed_server.route("/feed", lambda r: Response(304) if r.headers.get("if-none-match") == '"v1"'
                      else Response(200, doc, {"Content-Type": RSS, "ETag": '"v1"'}))
    f = feed(feed_server, "/feed")
    first = pipeline.poll_feed(f)
    assert (first.status, first.new, first.http_status) == (FeedStatus.OK, 2, 200)
    urls = sorted(a.url or "" for _, a in pipeline.repo.articles())
    assert urls == [feed_server.url("/a"), feed_server.url("/b")]
    second = pipeline.poll_feed(f, force=True)
    assert (second.http_status, second.new) == (304, 0)
    assert feed_server.requests_to("/feed")[1].headers["if-none-match"] == '"v1"'
    state = pipeline.repo.feed_state("f")
    assert state is not None and state.etag == '"v1"' and state.consecutive_errors == 0
    assert 0.95 * 600 < seconds_until(state.next_poll) <= 600
    assert pipeline.repo.article_count() == 2


def test_failing_feed_is_not_fetched_while_backing_off(pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.route("/feed", Response(503))
    f = feed(feed_server, "/feed")
    pipeline.poll_feed(f)
    assert pipeline.poll_feed(f).error == "backing off"
    assert len(feed_server.requests_to("/feed")) == 1


def test_healthy_feed_follows_its_schedule(pipeline: Pipeline, feed_server: FeedServer) -> None:
    # The scheduler's jitter may fire a little before next_poll: a healthy feed is polled anyway.
    feed_server.route("/feed", Response(200, rss(("1", "/a", "A")), {"Content-Type": RSS}))
    f = feed(feed_server, "/feed")
    pipeline.poll_feed(f)
    assert pipeline.poll_feed(f).error is None
    assert len(feed_server.requests_to("/feed")) == 2


def test_an_internal_error_is_recorded_on_the_feed(pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.route("/feed", Response(200, rss(("1", "/a", "A")), {"Content-Type": RSS}))

    def broken(*_args: object) -> list[object]:
        raise RuntimeError("disk full")

    pipeline.repo.record_success = broken  # type: ignore[method-assign]
    result = pipeline.poll_feed(feed(feed_server, "/feed"))
    assert result.status is FeedStatus.ERROR and "disk full" in (result.error or "")
    state = pipeline.repo.feed_state("f")
    assert state is not None and state.consecutive_errors == 1


def test_permanent_redirect_moves_the_feed_temporary_does_not(
    pipeline: Pipeline, feed_server: FeedServer
) -> None:
    feed_server.route("/old", Response(301, headers={"Location": "/new"}))
    feed_server.route("/tmp", Response(302, headers={"Location": "/new"}))
    feed_server.route("/new", Response(200, rss(("1", "/a", "A")), {"Content-Type": RSS}))
    pipeline.poll_feed(feed(feed_server, "/old", "moved"))
    pipeline.poll_feed(feed(feed_server, "/tmp", "temp"))
    moved, temp = pipeline.repo.feed_state("moved"), pipeline.repo.feed_state("temp")
    assert moved is not None and moved.url == feed_server.url("/new")
    assert temp is not None and temp.url == feed_server.url("/tmp")
    pipeline.poll_feed(feed(feed_server, "/old", "moved"), force=True)
    assert len(feed_server.requests_to("/old")) == 1  # the second poll went straight to /new


def test_gone_feed_is_disabled_with_its_reason(pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.route("/gone", Response(410))
    f = feed(feed_server, "/gone")
    result = pipeline.poll_feed(f)
    assert result.status is FeedStatus.GONE and "gone" in (result.error or "").lower()
    again = pipeline.poll_feed(f, force=True)
    assert again.status is FeedStatus.GONE
    assert len(feed_server.requests_to("/gone")) == 1
    pipeline.repo.reset_feed(f)  # `monitor feeds reset` brings it back
    feed_server.route("/gone", Response(200, rss(("1", "/a", "A")), {"Content-Type": RSS}))
    assert pipeline.poll_feed(f).new == 1


def test_failures_back_off_exponentially_and_success_resets(
    pipeline: Pipeline, feed_server: FeedServer
) -> None:
    feed_server.route("/feed", Response(500))
    f = feed(feed_server, "/feed", interval=600)
    delays = []
    for _ in range(4):
        result = pipeline.poll_feed(f, force=True)
        assert result.status is FeedStatus.ERROR and result.error == "HTTP 500 Internal Server Error"
        state = pipeline.repo.feed_state("f")
        assert state is not None
        delays.append(seconds_until(state.next_poll))
    for n, delay in enumerate(delays):
        assert 0.79 * 600 * 2**n < delay <= 1.2 * 600 * 2**n
    state = pipeline.repo.feed_state("f")
    assert state is not None and state.consecutive_errors == 4 and state.status is FeedStatus.ERROR
    feed_server.route("/feed", Response(200, rss(("1", "/a", "A")), {"Content-Type": RSS}))
    pipeline.poll_feed(f, force=True)
    state = pipeline.repo.feed_state("f")
    assert state is not None and state.consecutive_errors == 0 and state.status is FeedStatus.OK
    assert state.last_error == "HTTP 500 Internal Server Error"  # kept for the record


def test_backoff_is_capped_at_a_day(pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.route("/feed", Response(404))
    f = feed(feed_server, "/feed", interval=3600)
    for _ in range(12):
        pipeline.poll_feed(f, force=True)
    state = pipeline.repo.feed_state("f")
    assert state is not None and state.consecutive_errors == 12
    assert 86400 * 0.79 < seconds_until(state.next_poll) <= 86400


@pytest.mark.parametrize("retry_after", ["120", "DATE"])
def test_rate_limited_feed_honours_retry_after(
    pipeline: Pipeline, feed_server: FeedServer, retry_after: str
) -> None:
    if retry_after == "DATE":
        when = datetime.now(UTC) + timedelta(seconds=121)
        retry_after = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    feed_server.route("/feed", Response(429, headers={"Retry-After": retry_after}))
    result = pipeline.poll_feed(feed(feed_server, "/feed", interval=3600))
    assert result.http_status == 429
    state = pipeline.repo.feed_state("f")
    assert state is not None and 100 < seconds_until(state.next_poll) <= 121


def test_one_stalled_server_does_not_hold_up_the_others(
    pipeline: Pipeline, feed_server: FeedServer
) -> None:
    feed_server.route("/stall", Response(200, rss(("1", "/s", "S")), {"Content-Type": RSS}, delay=30))
    for n in range(6):
        feed_server.route(f"/ok{n}", Response(200, rss((f"g{n}", f"/{n}", f"T{n}")), {"Content-Type": RSS}))
    feeds = [feed(feed_server, "/stall", "stall")] + [
        feed(feed_server, f"/ok{n}", f"ok{n}") for n in range(6)
    ]
    started = time.monotonic()
    results = {r.feed_id: r for r in pipeline.poll_many(feeds, workers=4)}
    assert time.monotonic() - started < 10
    assert results["stall"].status is FeedStatus.ERROR and "timed out" in (results["stall"].error or "")
    assert all(results[f"ok{n}"].new == 1 for n in range(6))


def test_entries_without_guids_are_not_stored_twice(pipeline: Pipeline, feed_server: FeedServer) -> None:
    doc = rss((None, "/x", "X"), (None, "/y", "Y"))
    feed_server.route("/feed", Response(200, doc, {"Content-Type": RSS}))
    f = feed(feed_server, "/feed")
    assert pipeline.poll_feed(f).new == 2
    assert pipeline.poll_feed(f, force=True).unchanged == 2
    assert pipeline.repo.article_count() == 2


def test_same_story_in_two_feeds_is_stored_once(pipeline: Pipeline, feed_server: FeedServer) -> None:
    story = "https://news.example/world/story-1"
    tracked = rss(("a-1", story + "?utm_medium=rss", "Story"))
    feed_server.route("/a", Response(200, tracked, {"Content-Type": RSS}))
    feed_server.route("/b", Response(200, rss(("b-77", story, "Story (agency copy)")), {"Content-Type": RSS}))
    assert pipeline.poll_feed(feed(feed_server, "/a", "a")).new == 1
    assert pipeline.poll_feed(feed(feed_server, "/b", "b")).duplicates == 1
    assert pipeline.repo.article_count() == 1


def test_changed_entry_updates_the_article(pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.route("/feed", Response(200, rss(("1", "/a", "Early headline")), {"Content-Type": RSS}))
    f = feed(feed_server, "/feed")
    pipeline.poll_feed(f)
    feed_server.route("/feed", Response(200, rss(("1", "/a", "Corrected headline")), {"Content-Type": RSS}))
    result = pipeline.poll_feed(f, force=True)
    assert (result.new, result.updated) == (0, 1)
    ((_, stored),) = pipeline.repo.articles()
    assert stored.title == "Corrected headline"


def test_encodings_resolve(pipeline: Pipeline, feed_server: FeedServer) -> None:
    title = "Протесты в Казахстане"
    feed_server.route("/cp1251", Response(200, rss(("1", "/r", title), encoding="windows-1251"),
                                          {"Content-Type": "application/rss+xml"}))
    feed_server.route("/utf16", Response(200, rss(("2", "/u", "Ünïcödé"), encoding="utf-16"),
                                         {"Content-Type": "application/xml"}))
    assert pipeline.poll_feed(feed(feed_server, "/cp1251", "ru")).new == 1
    assert pipeline.poll_feed(feed(feed_server, "/utf16", "u16")).new == 1
    titles = sorted(a.title for _, a in pipeline.repo.articles())
    assert titles == ["Ünïcödé", title]


def test_gzip_body_and_user_agent(pipeline: Pipeline, feed_server: FeedServer) -> None:
    body = gzip.compress(rss(("1", "/a", "Zipped")))
    feed_server.route("/feed", Response(200, body, {"Content-Type": RSS, "Content-Encoding": "gzip"}))
    assert pipeline.poll_feed(feed(feed_server, "/feed")).new == 1
    request: Request = feed_server.requests_to("/feed")[0]
    assert request.headers["user-agent"].startswith("NarrativeMonitor/")


def test_ill_formed_feed_with_entries_is_accepted(pipeline: Pipeline, feed_server: FeedServer) -> None:
    broken = rss(("1", "/a", "Fine"), ("2", "/b", "Also fine")).replace(b"</channel>", b"<oops></channel>")
    feed_server.route("/feed", Response(200, broken, {"Content-Type": RSS}))
    result = pipeline.poll_feed(feed(feed_server, "/feed"))
    assert result.status is FeedStatus.OK and result.new == 2 and result.warning


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (Response(200, b"<html><body><p>Hi</p></body></html>", {"Content-Type": "text/html"}), "not a feed"),
        (Response(200, b"x" * 300_000, {"Content-Type": RSS}), "larger than"),
        (Response(404), "HTTP 404"),
    ],
)
def test_failures_are_recorded_on_the_feed(
    pipeline: Pipeline, feed_server: FeedServer, response: Response, message: str
) -> None:
    feed_server.route("/feed", response)
    result = pipeline.poll_feed(feed(feed_server, "/feed"))
    assert result.status is FeedStatus.ERROR and message in (result.error or "")
    state = pipeline.repo.feed_state("f")
    assert state is not None and message in (state.last_error or "") and state.consecutive_errors == 1
