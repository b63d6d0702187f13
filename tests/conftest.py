from __future__ import annotations

from collections.abc import Iterator

import pytest

from feedserver import FeedServer


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started loopback HTTP server, stopped after the test."""
    with FeedServer() as server:
        yield server


# Databases: every test that takes `database_url`, `engine` or `repo` runs twice, on a real
# SQLite file and on the real PostgreSQL server (in a throw-away schema).

import os  # noqa: E402
import uuid  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from storage.db import open_engine, upgrade  # noqa: E402
from storage.repo import Repository  # noqa: E402

POSTGRES_URL = os.environ.get(
    "MONITOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_or_skip() -> Engine:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except Exception as exc:
        admin.dispose()
        if os.environ.get("MONITOR_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL required but unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    return admin


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/monitor.db"
        return
    with _postgres_schema() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new PostgreSQL schema only, for what SQLite cannot do (the celery engine's shared database).

    Tests that use it are marked `postgres` themselves."""
    with _postgres_schema() as url:
        yield url


@contextmanager
def _postgres_schema() -> Iterator[str]:
    admin = _postgres_or_skip()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a migrated database."""
    engine = open_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: object) -> Iterator[Engine]:
    engine = open_engine(f"sqlite:///{tmp_path}/only-sqlite.db")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def repo(engine: Engine) -> Repository:
    return Repository(engine)


@pytest.fixture(scope="session")
def default_embedder() -> object:
    """The real default model (all-MiniLM-L6-v2 from its PyPI package), loaded once per run."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from monitor.matching.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"], "query")
    return embedder


# aiosmtpd logs each lost connection at INFO from its own thread, sometimes after pytest has
# closed the capture stream it wrote to ("I/O operation on closed file"): keep it to warnings.
import logging  # noqa: E402

logging.getLogger("mail.log").setLevel(logging.WARNING)
