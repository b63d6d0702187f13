"""Hostile or unlucky config edits: `config check` refuses what `run` cannot use, and a running
monitor outlives every broken edit. Log lines never carry credentials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import ConfigFile, FeedSection, Settings, load_settings
from monitor.config.settings import _DURATION_KEYS
from monitor.config.values import MAX_DURATION
from monitor.errors import ConfigError
from monitor.ingest.fetch import Fetcher, FetchOptions
from monitor.ingest.poller import Pipeline
from monitor.service.logs import redact
from monitor.service.scheduler import FeedScheduler
from storage.repo import Repository

from feedserver import FeedServer, Response
from slackserver import SlackServer

RSS = "application/rss+xml"
HEAD = """[monitor]
per_host_delay = "0s"
reload_interval = "500ms"

[matching]
model = "hashing"
"""


def rss(*titles: str) -> bytes:
    items = "".join(f"<item><guid>{t}</guid><link>/{t}</link><title>{t}</title></item>" for t in titles)
    return f'<rss version="2.0"><channel><title>Wire</title>{items}</channel></rss>'.encode()


def monitor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli.main", *args], env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=120)


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "COLUMNS": "300"}
    env.pop("MONITOR_DATABASE_URL", None)
    return monitor("--config", str(path), "config", "check", env=env)


FEED = '[feeds.x]\nurl = "http://127.0.0.1:1/f.xml"\n'


@pytest.mark.parametrize(("text", "message"), [
    (FEED + "interval = inf\n", "feeds.x.interval: must be at most 365 days"),
    (FEED + "interval = -inf\n", "feeds.x.interval: must be at least 60 seconds"),
    (FEED + "interval = nan\n", "feeds.x.interval: must be a number of seconds, not nan"),
    (FEED + 'interval = "300000000d"\n', "feeds.x.interval: must be at most 365 days"),
    (FEED + "interval = 1e300\n", "feeds.x.interval: must be at most 365 days"),
    (FEED + "interval = 99999999999999999999999999\n", "feeds.x.interval: must be at most 365 days"),
    ('[monitor]\npoll_interval = inf\n', "monitor.poll_interval: must be at most 365 days"),
    ('[monitor]\nper_host_delay = "2h"\n', "monitor.per_host_delay: must be at most 1 hour"),
    ('[monitor]\ntimeout = 1e300\n', "monitor.timeout: must be at most 1 hour"),
    ('[monitor]\nmax_backoff = "2d"\n', "monitor.max_backoff: must be at most 1 day"),
    ('[alerts]\nflood_window = "300000000d"\n', "alerts.flood_window: must be at most 365 days"),
    ('[matching]\nembed_interval = "2h"\n', "matching.embed_interval: must be at most 1 hour"),
    ('[engine]\nvisibility_timeout = inf\n', "engine.visibility_timeout: must be at most 7 days"),
    ('[digest.smtp]\nhost = "h"\ntimeout = "1d"\n', "digest.smtp.timeout: must be at most 1 hour"),
    (FEED + 'name = "Evil\\u0000News"\n', "feeds.x.name: contains the control character U+0000"),
    (FEED + 'tags = ["ok", "b\\u001bc"]\n', "feeds.x.tags.1: contains the control character U+001B"),
    ('[digest]\nsubject = "Digest\\r\\nBcc: x@evil.example"\n',
     "digest.subject: contains the control character U+000D"),
    ('[digest]\nsubject = "Digest for {day}"\n',
     "digest.subject: unknown field {day} (only {date} is filled in)"),
    ('[digest]\nsubject = "Digest for {}"\n', "digest.subject: unknown field {}"),
    ('[digest]\nsubject = "Digest for {date"\n', "digest.subject: not a valid template"),
    ('[digest]\nsubject = "Digest for {date:%Y}"\n', "digest.subject: not a valid template"),
    ('[digest.smtp]\nhost = "h"\npassword = "hunter22"\n',
     "digest.smtp.password: secrets come from the environment: MONITOR_SMTP_PASSWORD"),
    ('[alerts.slack]\ntoken = "xoxb-1"\n',
     "alerts.slack.token: secrets come from the environment: SLACK_BOT_TOKEN"),
    ('[alerts.slack]\nwebhook_url = "https://hooks.slack.com/services/T/B/X"\n',
     "alerts.slack.webhook_url: secrets come from the environment: SLACK_WEBHOOK_URL"),
])
def test_config_check_rejects_what_run_cannot_use(tmp_path: Path, text: str, message: str) -> None:
    done = check(tmp_path, text)
    assert done.returncode == 1, done.stdout
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_messages_never_echo_a_control_character(tmp_path: Path) -> None:
    done = check(tmp_path, '[feeds."a\\u0007b"]\nurl = "http://127.0.0.1:1/"\n')
    assert done.returncode == 1
    assert "feeds.a?b: a key with a control character" in done.stderr
    assert "\x07" not in done.stderr


@pytest.mark.parametrize("text", [
    FEED + 'interval = "365d"\nname = "Tab-free name, accents: é, ü"\n',
    '[digest]\nsubject = "{date!s}: {{narratives}} for {date}"\n',
    '[digest.smtp]\nhost = "h"\nusername = "monitor"\n',
])
def test_config_check_accepts_the_edges(tmp_path: Path, text: str) -> None:
    done = check(tmp_path, text)
    assert done.returncode == 0, done.stderr


TABLES = {
    "monitor": {"poll_interval", "per_host_delay", "connect_timeout", "timeout", "retry_after_cap",
                "max_backoff", "reload_interval"},
    "matching": {"embed_interval"},
    "alerts": {"flood_window", "deliver_interval"},
    "engine": {"visibility_timeout"},
    "digest.smtp": {"timeout"},
    "feeds.x": {"interval"},
    "stories": {"window", "growth_window"},
    "storage": {"retention", "vector_retention", "prune_interval"},
}
# Keys with a lower bound above a minute as well: what they say when a probe is below it.
FLOORS = {"retention": "must be 0 (keep forever) or at least 14 days",
          "vector_retention": "must be 0 (as long as the texts) or at least 2 days"}


@pytest.mark.parametrize("key", sorted(_DURATION_KEYS))
def test_every_duration_that_passes_fits_a_timedelta_and_a_trigger(tmp_path: Path, key: str) -> None:
    """Whatever bound each key has, the values it accepts are usable by `run`; the rest are refused."""
    table = next(t for t, keys in TABLES.items() if key in keys)
    required = {"digest.smtp": 'host = "h"\n', "feeds.x": 'url = "http://127.0.0.1:1/"\n',
                "storage": "retention = 0\n" if key != "retention" else ""}.get(table, "")
    path = tmp_path / "feeds.toml"
    for seconds in (60, 3600, 86400, 7 * 86400, int(MAX_DURATION), int(MAX_DURATION) + 1):
        path.write_text(f"[{table}]\n{required}{key} = {seconds}\n", encoding="utf-8")
        try:
            settings = load_settings(path)
        except ConfigError as exc:
            floor = FLOORS.get(key, "must be at most")
            refusals = (f"{table}.{key}: must be at most", f"{table}.{key}: {floor}")
            assert any(r in p for p in exc.problems for r in refusals), exc.problems
            continue
        for feed in settings.feeds():
            IntervalTrigger(seconds=feed.interval)
        IntervalTrigger(seconds=seconds)
        assert datetime.now(UTC) + timedelta(seconds=seconds) > datetime.now(UTC)
    assert seconds > MAX_DURATION  # the last probe was refused


# --- feeds add: a feed's own title is a stranger's text ---


def test_feeds_add_strips_control_characters_from_the_title(tmp_path: Path, feed_server: FeedServer) -> None:
    hostile = {"version": "https://jsonfeed.org/version/1.1", "title": "Evil\u0000 News\n\u202eTimes\u0085",
               "items": [{"id": "1", "url": "https://example.org/1", "title": "one"}]}
    feed_server.route("/feed.json", Response(200, json.dumps(hostile).encode(),
                                             {"Content-Type": "application/feed+json"}))
    config = tmp_path / "feeds.toml"
    config.write_text(HEAD, encoding="utf-8")
    env = {**os.environ, "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    done = monitor("--config", str(config), "feeds", "add", feed_server.url("/feed.json"), "--id", "evil",
                   env=env)
    assert done.returncode == 0, done.stderr
    (feed,) = load_settings(config).feeds()
    assert feed.name is not None and "Evil" in feed.name and "Times" in feed.name
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in feed.name)
    assert monitor("--config", str(config), "config", "check", env=env).returncode == 0


# --- a live edit under a running `monitor run` ---


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def live(tmp_path: Path, feed_server: FeedServer, database_url: str) -> Iterator[tuple[Path, Path]]:
    """`monitor run` on one loopback feed; yields the config file and the log file."""
    feed_server.route("/wire", Response(200, rss("one", "two"), {"Content-Type": RSS}))
    config, log = tmp_path / "feeds.toml", tmp_path / "run.log"
    config.write_text(HEAD + f'\n[feeds.wire]\nurl = "{feed_server.url("/wire")}"\n', encoding="utf-8")
    env = {**os.environ, "MONITOR_DATABASE_URL": database_url}
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "monitor.cli.main", "--config", str(config), "run"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        yield config, log
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


HOSTILE_EDITS = {
    "infinite interval": 'interval = inf\n',
    "300000000 days": 'interval = "300000000d"\n',
    "1e300 seconds": 'interval = 1e300\n',
    "NUL in the name": 'name = "Late\\u0000Feed"\n',
}


def _rejected(log: Path, times: int) -> bool:
    return log.read_text().count("config edit rejected") >= times


def test_run_outlives_hostile_edits_and_keeps_the_last_good_config(
    live: tuple[Path, Path], feed_server: FeedServer
) -> None:
    config, log = live
    wait_for(lambda: bool(feed_server.requests_to("/wire")), 30, "the first poll")
    good = config.read_text()
    feed_server.route("/late", Response(200, rss("late"), {"Content-Type": RSS}))
    late = f'\n[feeds.late]\nurl = "{feed_server.url("/late")}"\n'
    for n, edit in enumerate(HOSTILE_EDITS.values(), start=1):
        config.write_text(good + late + edit, encoding="utf-8")
        wait_for(partial(_rejected, log, n), 30, f"rejection {n}")
    assert not feed_server.requests_to("/late")  # none of the broken edits was applied
    config.write_text(good + late, encoding="utf-8")
    wait_for(lambda: bool(feed_server.requests_to("/late")), 30, "the good edit to be applied")
    text = log.read_text()
    assert "feeds.late.interval: must be at most 365 days" in text
    assert "feeds.late.name: contains the control character U+0000" in text
    assert "Traceback" not in text


# --- an edit that validates but cannot be applied (the database refuses it, a bug) ---


Loader = dict[str, Callable[[Path], Settings]]  # {"next": what the scheduler's next reload reads}


@pytest.fixture
def scheduled(
    tmp_path: Path, repo: Repository, feed_server: FeedServer
) -> Iterator[tuple[FeedScheduler, Loader]]:
    feed_server.route("/a", Response(200, b'<rss version="2.0"><channel></channel></rss>'))
    config = tmp_path / "feeds.toml"
    config.write_text(f'[feeds.a]\nurl = "{feed_server.url("/a")}"\n')
    loads: Loader = {"next": load_settings}
    with Fetcher(FetchOptions(per_host_delay=0)) as fetcher:
        scheduler = FeedScheduler(load_settings(config), Pipeline(repo, fetcher),
                                  load=lambda path: loads["next"](path))
        scheduler.start()
        yield scheduler, loads
        scheduler.shutdown()


def _loaded_with(section: FeedSection, path: Path) -> Settings:
    return unvalidated(load_settings(path), b=section)


def unvalidated(settings: Settings, **feeds: FeedSection) -> Settings:
    """Settings carrying values validation would refuse, as a bug past it would produce."""
    return replace(settings, file=ConfigFile.model_construct(**{**dict(settings.file), "feeds": feeds}))


def test_an_edit_that_cannot_be_applied_keeps_the_last_good_config(
    scheduled: tuple[FeedScheduler, Loader], feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A NUL in a name (PostgreSQL refuses it) or an interval APScheduler cannot take, past validation."""
    scheduler, loads = scheduled
    before = {job.id: job.trigger for job in scheduler._scheduler.get_jobs()}
    url = feed_server.url("/b")
    nul = FeedSection.model_construct(url=url, name="B\x00", interval=None, enabled=True, tags=())
    huge = FeedSection.model_construct(url=url, name="B", interval=1e300, enabled=True, tags=())
    path = scheduler.settings.path
    for n, section in enumerate((nul, huge)):
        loads["next"] = partial(_loaded_with, section)
        path.write_text(path.read_text() + f"\n# edit {n}\n")
        applied = scheduler.reload()
        if applied:  # SQLite stores a NUL; only the overflowing interval must fail everywhere
            assert section is nul
            path.write_text(path.read_text() + "\n# undo\n")
            loads["next"] = load_settings
            assert scheduler.reload()
            continue
        assert {job.id: job.trigger for job in scheduler._scheduler.get_jobs()}.keys() == before.keys()
        assert [f.id for f in scheduler.settings.feeds()] == ["a"]
    assert "config edit rejected" in caplog.text and "OverflowError" in caplog.text
    # The same broken edit is retried (the cause may pass) but its traceback is not repeated.
    caplog.clear()
    assert scheduler.reload() is False
    assert "config edit still cannot be applied" in caplog.text
    loads["next"] = load_settings
    path.write_text(path.read_text() + f'\n[feeds.b]\nurl = "{url}"\n')
    assert scheduler.reload() is True
    assert {job.id for job in scheduler._scheduler.get_jobs()} == {"feed:a", "feed:b"}


# --- credentials never reach the log ---


@pytest.mark.parametrize("json_logs", [False, True])
def test_a_feed_url_with_credentials_is_redacted_in_the_log(
    tmp_path: Path, feed_server: FeedServer, json_logs: bool
) -> None:
    feed_server.route("/feed.xml", Response(200, rss("one"), {"Content-Type": RSS}))
    feed_server.route("/gone.xml", Response(404))
    secret_url = feed_server.url("/feed.xml").replace("http://", "http://user:secret@")
    gone_url = feed_server.url("/gone.xml").replace("http://", "http://user:secret@")
    config = tmp_path / "feeds.toml"
    config.write_text(HEAD + f'\n[feeds.private]\nurl = "{secret_url}"\n[feeds.gone]\nurl = "{gone_url}"\n',
                      encoding="utf-8")
    env = {**os.environ, "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    args = ["--json-logs"] if json_logs else []
    done = monitor(*args, "--log-level", "debug", "--config", str(config), "poll", "--once", env=env)
    assert done.returncode == 0, done.stderr
    assert feed_server.requests_to("/feed.xml")[0].headers["authorization"].startswith("Basic ")
    assert "user:***@127.0.0.1" in done.stderr  # the line is there, without the password
    assert "secret" not in done.stderr


def test_the_slack_webhook_url_is_redacted_at_debug_level(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(HEAD, encoding="utf-8")
    with SlackServer(min_interval=None) as slack:
        env = {**os.environ, "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
               "SLACK_WEBHOOK_URL": slack.webhook_url}
        env.pop("SLACK_BOT_TOKEN", None)
        done = monitor("--log-level", "debug", "--config", str(config), "alerts", "test", env=env)
        assert done.returncode == 0, done.stderr
        assert slack.messages
    assert "Sending a request" in done.stderr  # slack_sdk's debug line, through our handler
    assert "/webhook/T000" not in done.stderr


@pytest.mark.parametrize(("line", "shown"), [
    ("url=https://user:pa55@host/feed", "url=https://user:***@host/feed"),
    ("url=https://tok3n@host/feed", "url=https://***@host/feed"),
    ("url: https://hooks.slack.com/services/T0/B0/XXXX, body",
     "url: https://hooks.slack.com/services/***, body"),
    ('{"url": "postgresql+psycopg://monitor:pw@db/x"}', '{"url": "postgresql+psycopg://monitor:***@db/x"}'),
    ("Authorization: Bearer xoxb-1234-5678-abcd", "Authorization: Bearer xoxb-***"),
    ("https://host/path?email=a@b.example stays", "https://host/path?email=a@b.example stays"),
])
def test_redact(line: str, shown: str) -> None:
    assert redact(line) == shown
