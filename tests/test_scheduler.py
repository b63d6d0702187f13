"""The scheduler keeps one job per enabled feed in step with feeds.toml edits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.ingest.fetch import Fetcher, FetchOptions
from monitor.ingest.poller import Pipeline
from monitor.service.scheduler import FeedScheduler
from storage.repo import Repository

from feedserver import FeedServer, Response


def feeds_toml(server: FeedServer, **feeds: str) -> str:
    return "".join(f'[feeds.{feed_id}]\nurl = "{server.url(path)}"\n{extra}\n'
                   for feed_id, (path, extra) in ((k, v.split("|")) for k, v in feeds.items()))


@pytest.fixture
def scheduler(tmp_path: Path, repo: Repository, feed_server: FeedServer) -> Iterator[FeedScheduler]:
    feed_server.route("/a", Response(200, b'<rss version="2.0"><channel></channel></rss>'))
    config = tmp_path / "feeds.toml"
    config.write_text(feeds_toml(feed_server, a="/a|", b="/b|", off="/off|enabled = false"))
    with Fetcher(FetchOptions(per_host_delay=0)) as fetcher:
        scheduler = FeedScheduler(load_settings(config), Pipeline(repo, fetcher), load=load_settings)
        scheduler.start()
        yield scheduler
        scheduler.shutdown()


def jobs(scheduler: FeedScheduler) -> dict[str, datetime]:
    return {job.id: job.next_run_time for job in scheduler._scheduler.get_jobs()}


def test_one_job_per_enabled_feed_first_run_soon(scheduler: FeedScheduler) -> None:
    scheduled = jobs(scheduler)
    assert set(scheduled) == {"feed:a", "feed:b"}
    soon = datetime.now(UTC) + timedelta(seconds=11)
    assert all(moment <= soon for moment in scheduled.values())


def test_edits_add_remove_and_disable_feeds(scheduler: FeedScheduler, feed_server: FeedServer) -> None:
    path = scheduler.settings.path
    path.write_text(feeds_toml(feed_server, a="/a|enabled = false", c="/c|interval = '2h'"))
    assert scheduler.reload() is True
    assert set(jobs(scheduler)) == {"feed:c"}
    assert scheduler.reload() is False  # unchanged file: nothing to do


def test_broken_edit_keeps_the_last_good_config(scheduler: FeedScheduler) -> None:
    before = jobs(scheduler)
    scheduler.settings.path.write_text("[feeds.a]\nurl = 'not a url'\n")
    assert scheduler.reload() is False
    assert set(jobs(scheduler)) == set(before)


def test_feed_backing_off_keeps_its_next_poll(
    tmp_path: Path, repo: Repository, feed_server: FeedServer
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(feeds_toml(feed_server, slow="/slow|"))
    settings = load_settings(config)
    repo.sync_feeds(settings.feeds())
    state = repo.feed_state("slow")
    assert state is not None
    later = datetime.now(UTC) + timedelta(hours=3)
    repo.save_feed_state(replace(state, next_poll=later, consecutive_errors=3))
    with Fetcher() as fetcher:
        scheduler = FeedScheduler(settings, Pipeline(repo, fetcher), load=load_settings)
        scheduler.start()
        try:
            assert abs((jobs(scheduler)["feed:slow"] - later).total_seconds()) < 1
        finally:
            scheduler.shutdown()
