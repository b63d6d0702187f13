"""Opening the database, bringing its schema up to date, and what its writes went through."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError

from monitor.errors import StorageError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every process of this application.
_MIGRATION_LOCK = 72_451_103
# Execution option marking transactions that only read (see `reader`).
_READ_ONLY = "monitor_read_only"
_BUSY_SECONDS = 30.0  # how long a writer waits for the lock
# Errors that say the storage itself is failing (full, read-only, broken), not one statement:
# SQLite's primary result codes, PostgreSQL's SQLSTATE classes 53 (insufficient resources:
# 53100 disk full) and 58 (system error: 58030 I/O error), and 25006 (read-only transaction).
_SQLITE_STORAGE_CODES = frozenset({8, 10, 11, 13, 14, 26})  # READONLY IOERR CORRUPT FULL CANTOPEN NOTADB
_PG_STORAGE_STATES = ("53", "58", "25006")


@dataclass(frozen=True)
class StorageFailure:
    """The latest error that said the storage itself fails, and when it happened."""

    at: datetime
    error: str


class _Failures:
    """The latest StorageFailure of one engine, across the threads that use it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latest: StorageFailure | None = None

    def record(self, context: ExceptionContext) -> None:
        error = context.original_exception
        if _is_storage_failure(error):
            with self._lock:
                self.latest = StorageFailure(datetime.now(UTC), _first_line(error))


_FAILURES: weakref.WeakKeyDictionary[Engine, _Failures] = weakref.WeakKeyDictionary()


def open_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, foreign keys, write transactions that wait) or PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _watched(create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20))
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _BUSY_SECONDS, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return _watched(engine)


def _watched(engine: Engine) -> Engine:
    """The engine, its storage failures recorded for `last_storage_failure`."""
    failures = _FAILURES.setdefault(engine, _Failures())
    event.listen(engine, "handle_error", failures.record)
    return engine


def last_storage_failure(engine: Engine) -> StorageFailure | None:
    """The latest error of this engine (this process) saying the storage fails: disk full, I/O."""
    failures = _FAILURES.get(engine)
    return failures.latest if failures else None


def write_error(exc: BaseException, operation: str) -> StorageError:
    """A StorageError naming the error that started it all.

    SQLite rolls a whole transaction back on a full disk, so releasing the savepoint the
    failed statement ran in fails next ("no such savepoint"): that follow-on error is what
    surfaces, with the real cause in its context.
    """
    errors = [error for error in _chain(exc) if isinstance(error, DBAPIError)]
    original = (errors[-1].orig if errors else None) or exc
    return StorageError(_first_line(original), operation=operation)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from or during, outermost first."""
    current: BaseException | None = exc
    for _ in range(20):  # bounded: a chain may loop
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


def _is_storage_failure(error: BaseException) -> bool:
    if isinstance(error, sqlite3.Error):
        return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_STORAGE_CODES
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_PG_STORAGE_STATES)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def reader(engine: Engine) -> Engine:
    """The same engine and pool, for transactions that only read.

    On SQLite they begin DEFERRED: in WAL mode a reader sees a snapshot and never waits for the
    write lock, so reads neither queue behind writers nor hold writers up. Nothing changes on
    PostgreSQL. A transaction begun here must not write.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the driver so that _sqlite_begin can say IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    if connection.get_execution_options().get(_READ_ONLY, False):
        connection.exec_driver_sql("BEGIN")  # WAL: a reader sees a snapshot and takes no lock
        return
    # A deferred transaction that later writes fails at once with SQLITE_BUSY when another
    # writer got there first; an immediate one waits for the lock (busy_timeout) instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations; safe when several processes start at once."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if revision == "head" and _at_head(engine, config):
        return  # no write transaction: on SQLite it would wait for a poll's write lock
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _at_head(engine: Engine, config: Config) -> bool:
    """Whether the schema is at the latest revision already, found out by reading only."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(config).get_heads())
    with reader(engine).connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) == heads


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
