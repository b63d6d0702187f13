"""Story commands and scheduling: `monitor stories` in new processes, `monitor run`'s job, and
the Celery task (enqueued by the scheduler, run by a worker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_stories import AURORA, CONFIG, World, settings_for

from monitor.config import load_settings
from storage.db import open_engine


def test_cli_update_list_show_and_json_shape(tmp_path: Path) -> None:
    """Each command is a new process: the story found by the first is the one the later ones see."""
    settings = settings_for(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = open_engine(url)
    from storage.db import upgrade

    upgrade(engine)
    world = World(engine, settings)
    for i, told in enumerate(AURORA[:3]):
        world.publish(f"o{i}", *told)
    world.stage.run_pending()
    env = {**os.environ, "MONITOR_DATABASE_URL": url}

    def monitor(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "monitor.cli.main", "--config", str(settings.path), *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    said = " ".join(monitor("stories", "update").stdout.split())  # rich wraps at the terminal's width
    assert "3 article(s) in the window (3 new), 1 live story (1 new, 0 merged), 1 emerging" in said
    world.publish("o3", *AURORA[3])
    world.stage.run_pending()
    monitor("stories", "update")
    (listed,) = json.loads(monitor("stories", "list", "--json").stdout)
    assert {"id", "label", "size", "outlets", "urls", "narrative_id", "emerging"} <= set(listed)
    assert listed["size"] == 4 and listed["outlets"] == 4 and len(listed["urls"]) == 4
    assert listed["narrative_id"] is None and listed["emerging"] is True
    assert all(isinstance(u, str) and u.startswith("https://") for u in listed["urls"])
    shown = json.loads(monitor("stories", "show", str(listed["id"]), "--json").stdout)
    assert shown["id"] == listed["id"] and shown["history"][-1]["size"] == 4
    assert "Aurora" in monitor("stories", "show", str(listed["id"])).stdout
    missing = subprocess.run([sys.executable, "-m", "monitor.cli.main", "--config", str(settings.path),
                              "stories", "show", "999"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "no story with id 999" in missing.stderr
    engine.dispose()


@pytest.mark.postgres
def test_in_celery_mode_the_scheduler_enqueues_the_update_and_a_worker_runs_it(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery import Celery

    from monitor.config.engine import EMBED_QUEUE
    from monitor.service.workers import STORIES_TASK, Dispatcher, WorkerRuntime, register_tasks
    from storage.db import upgrade

    monkeypatch.setenv("MONITOR_DATABASE_URL", postgres_url)
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG.format(channel="") + '\n[engine]\nkind = "celery"\nbroker_url = "redis://unused"\n',
                    encoding="utf-8")
    settings = load_settings(path)
    engine = open_engine(postgres_url)
    upgrade(engine)
    world = World(engine, settings)
    for i, told in enumerate(AURORA[:3]):
        world.publish(f"o{i}", *told)
    world.stage.run_pending()
    app = Celery("stories-test", broker="memory://", set_as_current=False)  # kombu's in-process broker
    Dispatcher(app, world.repo, 10.0).enqueue_stories()
    with app.connection_for_read() as connection:
        queued = connection.SimpleQueue(EMBED_QUEUE)
        message = queued.get(timeout=5)
        assert message.headers["task"] == STORIES_TASK
        message.ack()
        queued.close()
    runtime = WorkerRuntime(settings, engine, app, 1)
    register_tasks(app, runtime)
    try:
        assert app.tasks[STORIES_TASK]() == {"stories": 1, "emerging": 1}
        (story,) = world.store.stories()
        assert story.size == 3
    finally:
        runtime.close()
        engine.dispose()


def test_run_schedules_the_update_every_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli.main import _periodic_jobs
    from monitor.flow import Flow

    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path / 'run.db'}")
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG.format(channel="").replace("[stories]", '[stories]\ninterval = "15m"'),
                    encoding="utf-8")
    settings = load_settings(path)
    engine = open_engine(settings.database_url)
    from storage.db import upgrade

    upgrade(engine)
    try:
        jobs = {name: (function, every) for name, function, every in _periodic_jobs(Flow(settings, engine))}
        function, every = jobs["stories"]
        assert every == 900.0
        run = function()
        assert run is not None and run.stories == 0  # an empty window, updated
        off = replace(settings, file=settings.file.model_copy(
            update={"stories": settings.file.stories.model_copy(update={"enabled": False})}))
        assert "stories" not in {name for name, _f, _e in _periodic_jobs(Flow(off, engine))}
    finally:
        engine.dispose()
