"""[engine] validation (kinds, broker URLs, environment overrides, the shared database) and the
dispatcher's bookkeeping; the real workers are exercised in test_engine.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from monitor.cli.main import app
from monitor.config import load_settings
from monitor.config.engine import shown_broker
from monitor.errors import ConfigError
from monitor.service.workers import (
    MATCH_TASK,
    POLL_TASK,
    Dispatcher,
    celery_app,
    feed_from_message,
    feed_message,
)
from monitor.types import Feed, FeedStatus, utc_now
from storage.repo import Repository

PG = "postgresql://monitor@db.example.org/monitor"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONITOR_ENGINE", "MONITOR_BROKER_URL", "MONITOR_DATABASE_URL", "MONITOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.path == str(path)
    return caught.value.problems


def test_local_is_the_default_and_needs_no_broker(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.engine.kind == "local" and not settings.engine.distributed
    assert settings.engine.broker_url is None


def test_celery_with_broker_and_postgres(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
[storage]
url = "{PG}"

[engine]
kind = "celery"
broker_url = "redis://127.0.0.1:6379/0"
visibility_timeout = "10m"
""")
    engine = load_settings(path).engine
    assert engine.distributed
    assert engine.broker_url == "redis://127.0.0.1:6379/0"
    assert engine.visibility_timeout == 600


def test_celery_without_broker_or_shared_database_reports_both(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[engine]\nkind = "celery"\n'))
    assert len(found) == 2
    assert found[0].startswith("engine.broker_url: required when engine.kind is \"celery\"")
    assert "MONITOR_BROKER_URL" in found[0]
    assert found[1].startswith("storage.url: engine.kind \"celery\" needs a postgresql:// database")


def test_unknown_kind_and_bad_broker_name_their_keys(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[engine]\nkind = "threads"\nbroker_url = "x"\nspeed = 1\n'))
    assert any(p.startswith("engine.kind: ") and "celery" in p for p in found)
    assert "engine.speed: unknown key (check the spelling)" in found
    found = problems(write(tmp_path, f'[storage]\nurl = "{PG}"\n[engine]\nkind = "celery"\n'
                                     'broker_url = "http://broker.example"\n'))
    assert found == ["engine.broker_url: must be a redis://host[:port][/db] or "
                     "amqp://user@host[:port][/vhost] URL"]


def test_environment_overrides_kind_and_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[engine]\nkind = "local"\nbroker_url = "redis://a/1"\n')
    monkeypatch.setenv("MONITOR_ENGINE", "celery")
    monkeypatch.setenv("MONITOR_BROKER_URL", "amqp://guest:secret@rabbit:5672//")
    monkeypatch.setenv("MONITOR_DATABASE_URL", PG)
    engine = load_settings(path).engine
    assert engine.kind == "celery"
    assert engine.broker_url == "amqp://guest:secret@rabbit:5672//"
    assert shown_broker(engine.broker_url) == "amqp://guest:***@rabbit:5672//"


def test_environment_errors_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "")
    monkeypatch.setenv("MONITOR_ENGINE", "kubernetes")
    assert problems(path) == ["MONITOR_ENGINE: must be \"local\" or \"celery\", not 'kubernetes'"]
    monkeypatch.setenv("MONITOR_ENGINE", "celery")
    monkeypatch.setenv("MONITOR_BROKER_URL", "redis://:pw@broker:notaport/0")
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    found = problems(path)
    assert found[0].startswith("MONITOR_BROKER_URL: not a broker URL")
    assert found[1].startswith("MONITOR_DATABASE_URL: MONITOR_ENGINE \"celery\" needs a postgresql://")


def test_visibility_timeout_must_be_positive(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[engine]\nvisibility_timeout = "0s"\n'))
    assert found == ["engine.visibility_timeout: must be at least 1 second"]


def test_worker_refuses_the_local_engine(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    result = CliRunner().invoke(app, ["--config", str(path), "worker"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ConfigError)
    assert "needs kind = \"celery\"" in result.exception.problems[0]


def test_worker_refuses_unknown_queues(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    result = CliRunner().invoke(app, ["--config", str(path), "worker", "--queues", "fetch,mail"])
    assert result.exit_code == 2
    assert "queues are fetch and embed" in result.output


def test_celery_app_acknowledges_late_and_scales_the_redelivery_sweep(tmp_path: Path) -> None:
    path = write(tmp_path, f'[storage]\nurl = "{PG}"\n[engine]\nkind = "celery"\n'
                           'broker_url = "redis://127.0.0.1:6379/3"\nvisibility_timeout = "8s"\n')
    conf = celery_app(load_settings(path).engine).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    options = conf.broker_transport_options
    assert options["visibility_timeout"] == 8
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 2


def test_feed_round_trips_through_a_task_message() -> None:
    feed = Feed("bbc", "https://bbc.example/rss", "BBC", 600, True, "en", ("uk", "mainstream"))
    assert feed_from_message(feed_message(feed)) == feed


class RecordingApp:
    """Stands in for the Celery app on the scheduler's side: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[object], str, float]] = []

    def send_task(self, name: str, args: list[object] | None = None, *, queue: str, expires: float) -> None:
        self.sent.append((name, args or [], queue, expires))


def test_dispatcher_never_piles_up_tasks_for_a_feed_still_queued(sqlite_engine: Engine) -> None:
    feed = Feed("a", "https://a.example/feed", interval=600)
    repo = Repository(sqlite_engine)
    repo.sync_feeds([feed])
    app, now = RecordingApp(), [0.0]
    dispatcher = Dispatcher(app, repo, match_every=10, clock=lambda: now[0])
    assert dispatcher.enqueue_poll(feed)
    now[0] = 300.0
    assert not dispatcher.enqueue_poll(feed)  # nobody polled it yet: the first task is still queued
    state = repo.feed_state("a")
    assert state is not None
    repo.save_feed_state(replace(state, status=FeedStatus.OK, last_success=utc_now()))
    assert dispatcher.enqueue_poll(feed)  # a worker polled it since: due again
    now[0] = 300.0 + 600.0
    assert dispatcher.enqueue_poll(feed)  # the last task expired unrun (lost): sent again
    assert [(name, queue, expires) for name, _args, queue, expires in app.sent] == [
        (POLL_TASK, "fetch", 600.0)] * 3
    assert app.sent[0][1] == [feed_message(feed)]
    dispatcher.enqueue_match()
    assert app.sent[-1] == (MATCH_TASK, [], "embed", 30.0)


def test_dispatcher_sends_nothing_for_feeds_gone_or_backing_off(sqlite_engine: Engine) -> None:
    gone, failing = Feed("gone", "https://a.example/gone"), Feed("failing", "https://a.example/down")
    repo = Repository(sqlite_engine)
    repo.sync_feeds([gone, failing])
    later = utc_now() + timedelta(hours=1)
    for feed_id, status, next_poll in (("gone", FeedStatus.GONE, None), ("failing", FeedStatus.ERROR, later)):
        state = repo.feed_state(feed_id)
        assert state is not None
        repo.save_feed_state(replace(state, status=status, next_poll=next_poll, last_error="down"))
    app = RecordingApp()
    dispatcher = Dispatcher(app, repo, match_every=10)
    assert not dispatcher.enqueue_poll(gone) and not dispatcher.enqueue_poll(failing)
    assert app.sent == []
