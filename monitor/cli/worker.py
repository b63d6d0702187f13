"""`monitor worker`, and the hooks that turn `monitor run` into a scheduler in celery mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.support import database, settings_of
from monitor.config.engine import ENGINE_ENV, QUEUES
from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.service.workers import Dispatcher
    from storage.repo import Repository


def worker(
    ctx: typer.Context,
    queues: Annotated[str, typer.Option(
        "--queues", "-Q", help="Comma-separated: fetch (polling), embed (matching).")] = "fetch,embed",
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, max=512,
        help="Tasks run at once (threads); default monitor.max_concurrency.")] = None,
) -> None:
    """Run a Celery worker (engine.kind = "celery"): polls feeds and matches articles until SIGTERM."""
    wanted = _queues(queues)
    settings = settings_of(ctx)
    _require_celery(settings)
    threads = concurrency or settings.monitor.max_concurrency
    from monitor.service.workers import WorkerRuntime, celery_app, register_tasks, run_worker

    with database(settings) as engine:
        app = celery_app(settings.engine)
        runtime = WorkerRuntime(settings, engine, app, threads)
        register_tasks(app, runtime)
        try:
            code = run_worker(app, wanted, threads)
        finally:
            runtime.close()
    if code:
        raise typer.Exit(code)


def _queues(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        raise typer.BadParameter(f"queues are {' and '.join(QUEUES)}; got {text!r}", param_hint="--queues")
    return list(dict.fromkeys(names))


def _require_celery(settings: Settings) -> None:
    if not settings.engine.distributed:
        raise ConfigError(settings.path, [
            f"engine.kind: `monitor worker` needs kind = \"celery\" (or {ENGINE_ENV}=celery); "
            "with \"local\", `monitor run` does all the work itself"
        ])


def dispatcher(settings: Settings, repo: Repository) -> Dispatcher | None:
    """In celery mode, what `monitor run` enqueues with; None when it runs the work itself."""
    if not settings.engine.distributed:
        return None
    from monitor.service.workers import Dispatcher, celery_app

    return Dispatcher(celery_app(settings.engine), repo, settings.file.matching.embed_interval)
