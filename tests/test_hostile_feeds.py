"""One bad item or header never breaks a feed (issue 13): loopback feeds, SQLite and PostgreSQL.

A bad item is repaired (or its bad part replaced) and counted in the poll's warning, never the
batch; a validator that cannot be sent back is dropped; a redirect to something that is not a
feed does not move the feed; nesting too deep for the parser is a ParseError, not a traceback.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.ingest.fetch import Fetcher, FetchOptions
from monitor.ingest.poller import Pipeline
from monitor.types import Feed, FeedStatus
from storage.repo import Repository

from feedserver import FeedServer, Response

JSON_FEED = "application/feed+json"
RSS = "application/rss+xml"


def json_feed(*items: dict[str, object]) -> bytes:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "Hostile", "items": list(items)}
    return json.dumps(document).encode()


def item(n: int, **fields: object) -> dict[str, object]:
    return {"id": f"item-{n}", "url": f"https://example.org/{n}", "title": f"Story {n}",
            "content_text": f"The text of story {n}.", "date_published": "2026-11-20T10:00:00Z", **fields}


@pytest.fixture
def pipeline(repo: Repository) -> Iterator[Pipeline]:
    options = FetchOptions(per_host_delay=0, total_timeout=5, connect_timeout=2, per_host_concurrency=8)
    with Fetcher(options) as fetcher:
        yield Pipeline(repo, fetcher, rng=random.Random(7))


def test_a_nul_in_one_item_is_removed_and_every_item_stored(
    pipeline: Pipeline, feed_server: FeedServer
) -> None:
    bad = item(2, title="Bad\u0000title", content_text="text\u0000with NUL\ud800",
               author={"name": "A\u0000B"}, url="https://example.org/2\u0000x", id="item\u0000-2")
    doc = json_feed(item(1), bad, item(3))
    feed_server.route("/feed.json", Response(200, doc, {"Content-Type": JSON_FEED}))
    feed = Feed("nul", feed_server.url("/feed.json"))
    result = pipeline.poll_feed(feed)
    assert (result.status, result.new) == (FeedStatus.OK, 3), result.error
    assert result.warning == "1 item(s) repaired: characters a database cannot store removed"
    stored = {a.guid: a for _, a in pipeline.repo.articles()}
    assert stored["item-2"].title == "Badtitle" and stored["item-2"].text == "textwith NUL"
    assert stored["item-2"].author == "AB" and stored["item-2"].url == "https://example.org/2x"
    again = pipeline.poll_feed(feed, force=True)  # the next poll finds them stored, unchanged
    assert (again.status, again.new, again.unchanged) == (FeedStatus.OK, 0, 3)


@pytest.mark.parametrize("date", ["9999-12-31", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00",
                                  "10000-01-01", "0000-01-01", "2026-01-01T00:00:00+99:00",
                                  "Fri, 31 Dec 9999 23:59:59 -0100", "0100-01-01T00:00:00Z"])
def test_an_absurd_date_means_the_fetch_time_and_is_counted(
    pipeline: Pipeline, feed_server: FeedServer, date: str
) -> None:
    doc = json_feed(item(1), item(2, date_published=date), item(3))
    feed_server.route("/feed.json", Response(200, doc, {"Content-Type": JSON_FEED}))
    before = datetime.now(UTC)
    result = pipeline.poll_feed(Feed("dates", feed_server.url("/feed.json")))
    assert (result.status, result.new) == (FeedStatus.OK, 3), result.error
    assert result.warning == "1 item(s) with an unreadable or out-of-range date: fetch time used"
    stored = {a.guid: a for _, a in pipeline.repo.articles()}
    assert before - timedelta(seconds=5) <= stored["item-2"].published <= datetime.now(UTC)
    assert stored["item-1"].published == datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_an_absurd_rss_date_is_counted_too(pipeline: Pipeline, feed_server: FeedServer) -> None:
    doc = (b'<rss version="2.0"><channel><title>x</title>'
           b"<item><guid>1</guid><title>a</title><pubDate>Fri, 31 Dec 9999 23:59:59 -0100</pubDate></item>"
           b"<item><guid>2</guid><title>b</title><pubDate>Sat, 01 Jan 0000 00:00:00 +0100</pubDate></item>"
           b"<item><guid>3</guid><title>c</title><pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>"
           b"</channel></rss>")
    feed_server.route("/rss", Response(200, doc, {"Content-Type": RSS}))
    result = pipeline.poll_feed(Feed("rss", feed_server.url("/rss")))
    assert (result.status, result.new) == (FeedStatus.OK, 3), result.error
    assert result.warning == "2 item(s) with an unreadable or out-of-range date: fetch time used"
    assert all(a.published.year == 2026 for _, a in pipeline.repo.articles())


@pytest.mark.parametrize(("header", "value"), [
    ("ETag", '"caf\u00e9"'),  # one latin-1 byte on the wire
    ("ETag", '"caf\u00c3\u00a9"'),  # UTF-8 bytes on the wire: the client reads "café"
    ("ETag", '"' + "x" * 5000 + '"'),
    ("Last-Modified", "Mon, 23 Nov 2026 10:00:00 GMT \u00e9"),
])
def test_a_validator_that_cannot_be_sent_back_is_dropped(
    pipeline: Pipeline, feed_server: FeedServer, header: str, value: str
) -> None:
    headers = {"Content-Type": JSON_FEED, header: value}
    feed_server.route("/feed.json", Response(200, json_feed(item(1)), headers))
    feed = Feed("etag", feed_server.url("/feed.json"))
    assert pipeline.poll_feed(feed).new == 1
    state = pipeline.repo.feed_state("etag")
    assert state is not None and state.etag is None and state.last_modified is None
    second = pipeline.poll_feed(feed, force=True)
    assert (second.status, second.http_status, second.error) == (FeedStatus.OK, 200, None)
    sent = feed_server.requests_to("/feed.json")[1].headers
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_a_bad_validator_stored_earlier_no_longer_stops_the_feed(
    pipeline: Pipeline, feed_server: FeedServer
) -> None:
    """A database written before the check: the bad value is not sent, the feed recovers."""
    feed_server.route("/feed.json", Response(200, json_feed(item(1)), {"Content-Type": JSON_FEED}))
    feed = Feed("old", feed_server.url("/feed.json"))
    pipeline.poll_feed(feed)
    state = pipeline.repo.feed_state("old")
    assert state is not None
    pipeline.repo.save_feed_state(replace(state, etag='"caf\u00e9"', last_modified="\u00e9t\u00e9"))
    result = pipeline.poll_feed(feed, force=True)
    assert (result.status, result.http_status, result.error) == (FeedStatus.OK, 200, None)


def test_a_permanent_redirect_to_a_non_feed_does_not_move_the_feed(
    pipeline: Pipeline, feed_server: FeedServer
) -> None:
    page = Response(200, b"<html><body>Parked domain</body></html>", {"Content-Type": "text/html"})
    feed_server.route("/page", page)
    feed_server.route("/feed", Response(301, headers={"Location": "/page"}))
    feed = Feed("moved", feed_server.url("/feed"))
    result = pipeline.poll_feed(feed)
    assert result.status is FeedStatus.ERROR and result.error == "not a feed: looks like HTML"
    state = pipeline.repo.feed_state("moved")
    assert state is not None and state.url == feed_server.url("/feed")
    feed_server.route("/page", Response(200, json_feed(item(1)), {"Content-Type": JSON_FEED}))
    assert pipeline.poll_feed(feed, force=True).status is FeedStatus.OK
    state = pipeline.repo.feed_state("moved")
    assert state is not None and state.url == feed_server.url("/page")  # a feed now: followed


def test_deeply_nested_json_is_a_parse_error(pipeline: Pipeline, feed_server: FeedServer) -> None:
    depth = 200_000
    doc = b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * depth + b"]" * depth + b"}"
    feed_server.route("/deep.json", Response(200, doc, {"Content-Type": JSON_FEED}))
    result = pipeline.poll_feed(Feed("deep", feed_server.url("/deep.json")))
    assert (result.status, result.error) == (FeedStatus.ERROR, "not a feed: JSON nested too deeply")


# --- the commands a user runs ----------------------------------------------------------------


def monitor(config: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli.main", "--config", str(config), *args],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {**os.environ, "MONITOR_DATABASE_URL": database_url, "COLUMNS": "200"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text('[monitor]\nper_host_delay = "0s"\n\n[matching]\nmodel = "hashing"\n'
                    "starter_narratives = false\n", encoding="utf-8")
    return path


def test_poll_once_stores_every_item_of_a_hostile_feed(
    config: Path, env: dict[str, str], feed_server: FeedServer
) -> None:
    absurd = item(3, date_published="9999-12-31T23:00:00-05:00")
    doc = json_feed(item(1), item(2, title="NUL\u0000here"), absurd)
    served = Response(200, doc, {"Content-Type": JSON_FEED, "ETag": '"\u00e9t\u00e9"'})
    feed_server.route("/hostile.json", served)
    with config.open("a", encoding="utf-8") as file:
        file.write(f'\n[feeds.hostile]\nurl = "{feed_server.url("/hostile.json")}"\n')
    for _ in range(2):  # the second poll is where a stored bad ETag used to fail
        done = monitor(config, "poll", "--once", env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stdout
    assert "item(s) repaired" in done.stdout and "out-of-range date" in done.stdout
    assert "feed accepted with problems" in done.stderr
    listed = {f["id"]: f for f in json.loads(monitor(config, "feeds", "list", "--json", env=env).stdout)}
    assert listed["hostile"]["status"] == "ok" and listed["hostile"]["article_count"] == 3


def test_feeds_add_accepts_a_feed_with_an_absurd_date(
    config: Path, env: dict[str, str], feed_server: FeedServer
) -> None:
    doc = json_feed(item(1, date_published="9999-12-31T23:00:00-05:00"))
    feed_server.route("/dated.json", Response(200, doc, {"Content-Type": JSON_FEED}))
    done = monitor(config, "feeds", "add", feed_server.url("/dated.json"), "--id", "dated", env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert feed_server.url("/dated.json") in config.read_text()


def test_narratives_import_skips_a_huge_csv_cell(tmp_path: Path, config: Path, env: dict[str, str]) -> None:
    file = tmp_path / "narratives.csv"
    huge = "x" * 1_000_000
    file.write_text("title,summary\nFirst claim,one\n"
                    f'Huge claim,"{huge}"\n'
                    "Third claim,three\n", encoding="utf-8")
    done = monitor(config, "narratives", "import", str(file), env=env)
    assert done.returncode == 1  # a bad row: reported, the rest imported
    assert f"{file}:3: a cell of 1000000 characters" in done.stderr
    assert "Imported 2 narrative(s)" in done.stdout
    titles = {n["title"] for n in json.loads(monitor(config, "narratives", "list", "--json", env=env).stdout)}
    assert titles == {"First claim", "Third claim"}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_narratives_import_names_a_file_nested_too_deeply(
    tmp_path: Path, config: Path, env: dict[str, str], suffix: str
) -> None:
    file = tmp_path / f"deep{suffix}"
    file.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    done = monitor(config, "narratives", "import", str(file), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{file}" in done.stderr and "nested too deeply" in done.stderr


def test_narratives_import_removes_nul_characters(tmp_path: Path, config: Path, env: dict[str, str]) -> None:
    file = tmp_path / "nul.jsonl"
    file.write_text('{"title": "A claim\\u0000 with a NUL", "summary": "s\\u0000"}\n'
                    + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    done = monitor(config, "narratives", "import", str(file), env=env)
    assert "Imported 1 narrative(s)" in done.stdout, done.stderr
    assert f"{file}:2: nested too deeply" in done.stderr
    titles = {n["title"] for n in json.loads(monitor(config, "narratives", "list", "--json", env=env).stdout)}
    assert titles == {"A claim with a NUL"}
