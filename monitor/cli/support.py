"""Plumbing shared by the CLI's command modules: consoles, settings, the database.

Command modules import heavy libraries (SQLAlchemy, numpy, torch, Celery, matplotlib) inside
the commands that use them, so that `monitor --help` and light commands start at once
(bench/startup.py).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from monitor.errors import StorageError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings

out = Console()
err = Console(stderr=True)
log = logging.getLogger("monitor.cli.main")


@dataclass
class Context:
    config: str | None
    log_level: str | None


def settings_of(ctx: typer.Context) -> Settings:
    from monitor.config import load_settings

    settings = load_settings(ctx.obj.config)
    if ctx.obj.log_level is None:
        logging.getLogger().setLevel(settings.monitor.log_level.upper())
    if not settings.path.exists():
        log.warning("no config file; running on defaults with no feeds",
                    extra={"path": str(settings.path)})
    return settings


@contextmanager
def database(settings: Settings) -> Iterator[Engine]:
    """An up-to-date database: migrations run on every start."""
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import open_engine, upgrade

    engine = open_engine(settings.database_url)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(
            f"cannot open or migrate the database at {shown_url(settings)}: {exc}"
        ) from exc
    try:
        yield engine
    finally:
        engine.dispose()


def shown_url(settings: Settings) -> str:
    """The database URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def on_signals(stop: threading.Event, finishing: str) -> None:
    """SIGINT and SIGTERM set `stop` (logging what is being finished); a second one stops at once."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info(f"stopping: {finishing}", extra={"signal": signal.Signals(signum).name})
        stop.set()
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
