"""Distributed mode end to end: real `monitor worker` and `monitor run` processes on the Redis at
127.0.0.1:6379 and PostgreSQL, feeds on a loopback server, Slack played by a loopback stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, text

from monitor.config import load_settings
from monitor.service.workers import POLL_TASK, celery_app, feed_message
from monitor.types import Narrative
from storage.db import open_engine, upgrade
from storage.narratives_repo import MatchStore

from feedserver import FeedServer, Request, Response
from slackserver import TOKEN, SlackServer

pytestmark = pytest.mark.postgres

REDIS_URL = os.environ.get("MONITOR_TEST_REDIS_URL", "redis://127.0.0.1:6379")
NARRATIVES = [
    Narrative("biolabs", "The United States runs secret biological weapons laboratories in Ukraine."),
    Narrative("nato", "NATO is encircling Russia with military bases on every border."),
]
PER_FEED = 3  # articles in every feed
ALERT_EVERY = 25  # one feed in this many carries an article that repeats a narrative
CONFIG = """
[monitor]
poll_interval = "10m"     # each feed is polled once during a test
per_host_concurrency = 64 # every feed lives on one loopback host
per_host_delay = "0s"

[engine]
kind = "celery"           # the broker comes from MONITOR_BROKER_URL, as recommended
visibility_timeout = "{visibility}"

[matching]
model = "hashing"
starter_narratives = false
embed_interval = "2s"

[alerts]
deliver_interval = "1s"

[alerts.slack]
channel = "C0ALERTS"
api_url = "{api_url}"
"""


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A Redis database of its own, flushed before and after the test.

    Each pytest-xdist worker (gw0, gw1, ...) takes its own database, so parallel runs never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    url = f"{REDIS_URL}/{1 + int(worker.removeprefix('gw')) % 15}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if os.environ.get("MONITOR_REQUIRE_REDIS"):
            pytest.fail(f"Redis required but unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


class World:
    """Feeds on the loopback server, narratives in the database, and the config file."""

    def __init__(self, tmp_path: Path, database: str, feeds: FeedServer, slack: SlackServer,
                 n_feeds: int, delay: float = 0.0, visibility: str = "1m") -> None:
        self.database, self.feeds, self.n_feeds = database, feeds, n_feeds
        self.in_flight: Counter[str] = Counter()  # requests being answered, per feed
        self.most: Counter[str] = Counter()  # the most ever answered at once, per feed
        self._lock = threading.Lock()
        self.engine: Engine = open_engine(database)
        upgrade(self.engine)
        MatchStore(self.engine).upsert_narratives(NARRATIVES)
        self.alert_titles: list[str] = []
        self.config = tmp_path / "feeds.toml"
        tables = [self._serve(i, delay) for i in range(n_feeds)]
        head = CONFIG.format(api_url=slack.api_url, visibility=visibility)
        self.config.write_text(head + "".join(tables), encoding="utf-8")

    def _serve(self, i: int, delay: float) -> str:
        titles = [f"Weather in district {i}, part {k}: light winds" for k in range(PER_FEED)]
        if i % ALERT_EVERY == 0:
            narrative = NARRATIVES[(i // ALERT_EVERY) % len(NARRATIVES)]
            titles[0] = f"{narrative.title} Feed {i} says so."
            self.alert_titles.append(titles[0])
        self.feeds.route(f"/f{i}.xml", self._counted(Response(body=rss(i, titles)), delay))
        return f'\n[feeds.f{i}]\nurl = "{self.feeds.url(f"/f{i}.xml")}"\n'

    def _counted(self, answer: Response, delay: float) -> Callable[[Request], Response]:
        """Answer after `delay`, counting the requests in flight (for overlap and kill timing)."""
        def route(request: Request) -> Response:
            with self._lock:
                self.in_flight[request.path] += 1
                self.most[request.path] = max(self.most[request.path], self.in_flight[request.path])
            time.sleep(delay)
            with self._lock:
                self.in_flight[request.path] -= 1
            return answer
        return route

    def polls_in_flight(self) -> int:
        with self._lock:
            return sum(self.in_flight.values())

    def count(self, sql: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(text(sql)) or 0)

    def articles(self) -> int:
        return self.count("SELECT count(*) FROM articles")

    def sent_alerts(self) -> int:
        return self.count("SELECT count(*) FROM alerts WHERE kind = 'alert' AND status = 'sent'")

    def assert_stored_once(self) -> None:
        expected = self.n_feeds * PER_FEED
        assert self.articles() == expected
        assert self.count("SELECT count(DISTINCT url) FROM articles") == expected
        assert self.count("SELECT count(*) FROM article_sources") == expected
        assert self.count("SELECT count(*) FROM feeds WHERE status = 'ok'") == self.n_feeds

    def assert_alerted_once(self, slack: SlackServer) -> None:
        top = [m.text for m in slack.messages if m.thread_ts is None]
        assert len(top) == len(self.alert_titles)
        for title in self.alert_titles:
            assert sum(title in message for message in top) == 1, title
        assert self.count("SELECT count(*) FROM matches WHERE tier = 'alert'") == len(self.alert_titles)
        assert self.count("SELECT count(*) FROM alerts WHERE status <> 'sent'") == 0


def rss(i: int, titles: list[str]) -> bytes:
    published = format_datetime(datetime.now(UTC), usegmt=True)  # fresh news: alerts go out
    items = "".join(
        f"<item><guid>f{i}-{k}</guid><link>https://news.example/{i}/{k}</link><title>{title}</title>"
        f"<description>Officials repeated it in report {i}-{k}.</description>"
        f"<pubDate>{published}</pubDate></item>"
        for k, title in enumerate(titles)
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {i}</title>'
            f"<link>https://news.example/{i}</link>{items}</channel></rss>").encode()


class Cluster:
    """`monitor` processes with their logs in files (a full pipe would block them)."""

    def __init__(self, tmp_path: Path, world: World, broker: str) -> None:
        self.tmp_path, self.world = tmp_path, world
        self.env = {**os.environ, "MONITOR_DATABASE_URL": world.database, "MONITOR_BROKER_URL": broker,
                    "SLACK_BOT_TOKEN": TOKEN, "MONITOR_CONFIG": str(world.config)}
        for name in ("SLACK_WEBHOOK_URL", "MONITOR_ENGINE"):
            self.env.pop(name, None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{name}.log").open("wb")
        # A session of its own, so that a kill takes the whole worker down as a crash would.
        proc = subprocess.Popen([sys.executable, "-m", "monitor.cli.main", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def workers(self, *names: str, concurrency: int = 4) -> None:
        """Start workers side by side (each takes seconds to import) and wait until they consume."""
        for name in names:
            self.start(name, "worker", "--concurrency", str(concurrency))
        for name in names:
            self.wait_for(lambda name=name: "ready." in self.log(name), f"{name} to start", 60)

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        self.killed.add(name)
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            for name, proc in self.procs.items():
                assert proc.poll() is None or name in self.killed, f"{name} exited:\n{self.log(name)}"
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.log(n)[-3000:]}" for n in self.procs)
                pytest.fail(f"timed out waiting for {what}\n{tails}")
            time.sleep(0.2)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(channels=("C0ALERTS",)) as server:
        yield server


def run_to_completion(cluster: Cluster, world: World, slack: SlackServer,
                      during: Callable[[], None] = lambda: None) -> None:
    """Two workers and the scheduler until every article is stored and every alert sent."""
    cluster.start("scheduler", "run")
    cluster.workers("worker-a", "worker-b")
    during()
    expected = world.n_feeds * PER_FEED
    # Generous: in a loaded run (three pytest workers loading models beside it) polls slow down.
    cluster.wait_for(lambda: world.articles() >= expected, f"{expected} articles", 180)
    cluster.wait_for(lambda: world.sent_alerts() >= len(world.alert_titles), "the alerts", 120)
    cluster.stop()


def test_two_workers_store_every_article_once_and_send_every_alert_once(
    tmp_path: Path, postgres_url: str, broker_url: str, feed_server: FeedServer, slack: SlackServer
) -> None:
    world = World(tmp_path, postgres_url, feed_server, slack, n_feeds=200)
    cluster = Cluster(tmp_path, world, broker_url)
    try:
        run_to_completion(cluster, world, slack)
    finally:
        cluster.stop()
    world.assert_stored_once()
    world.assert_alerted_once(slack)
    # The scheduler enqueued each feed once and no task ran twice.
    assert all(len(feed_server.requests_to(f"/f{i}.xml")) == 1 for i in range(world.n_feeds))
    # Both workers took a share of the polls.
    assert "poll ok" in cluster.log("worker-a") and "poll ok" in cluster.log("worker-b")


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    tmp_path: Path, postgres_url: str, broker_url: str, feed_server: FeedServer, slack: SlackServer
) -> None:
    # Slow answers keep polls in flight; a short visibility_timeout brings the killed worker's
    # tasks back within the test.
    world = World(tmp_path, postgres_url, feed_server, slack, n_feeds=150, delay=0.4, visibility="5s")
    cluster = Cluster(tmp_path, world, broker_url)

    def kill_worker_a_mid_run() -> None:
        # Worker b has 4 threads: with 5 polls in flight, at least one of them is worker a's.
        cluster.wait_for(lambda: cluster.log("worker-a").count("poll ok") >= 5
                         and world.polls_in_flight() >= 5, "worker a to be busy polling", 60)
        cluster.kill("worker-a")
        assert world.articles() < world.n_feeds * PER_FEED  # really mid-run

    try:
        run_to_completion(cluster, world, slack, during=kill_worker_a_mid_run)
    finally:
        cluster.stop()
    world.assert_stored_once()
    world.assert_alerted_once(slack)
    # The polls the kill interrupted were delivered again (after visibility_timeout) and redone.
    requests = Counter(r.path for r in feed_server.requests)
    assert max(requests.values()) >= 2


def test_duplicate_poll_tasks_never_poll_one_feed_at_once(
    tmp_path: Path, postgres_url: str, broker_url: str, feed_server: FeedServer, slack: SlackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Slow answers: a wide window for a second poll of the same feed to overlap the first.
    world = World(tmp_path, postgres_url, feed_server, slack, n_feeds=30, delay=0.3)
    monkeypatch.setenv("MONITOR_BROKER_URL", broker_url)
    monkeypatch.setenv("MONITOR_DATABASE_URL", postgres_url)
    settings = load_settings(world.config)
    cluster = Cluster(tmp_path, world, broker_url)
    workers = ("worker-a", "worker-b")
    try:
        cluster.workers(*workers)
        app = celery_app(settings.engine)
        for feed in settings.feeds():
            for _copy in range(3):  # back to back, as a flood of duplicates would arrive
                app.send_task(POLL_TASK, args=[feed_message(feed)], queue="fetch")
        app.close()
        cluster.wait_for(lambda: finished_polls(cluster, workers) >= 3 * world.n_feeds,
                         "every task to finish", 120)
    finally:
        cluster.stop()
    assert world.articles() == world.n_feeds * PER_FEED
    assert max(world.most.values()) == 1  # never two polls of one feed at the same time
    skipped = sum(cluster.log(name).count("poll skipped") for name in workers)
    assert skipped > 0  # the duplicates did overlap, and the lock turned them away


def finished_polls(cluster: Cluster, workers: tuple[str, ...]) -> int:
    """Poll tasks the workers report done: each logs that it polled or that it stood aside."""
    return sum(cluster.log(name).count(event) for name in workers for event in ("poll ok", "poll skipped"))
