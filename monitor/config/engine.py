"""The `[engine]` settings resolved against the environment: where the pipeline's work runs.

Kept apart from `config.py` so that the checks across keys (a broker for celery, a shared
database for its workers) stay in one place; `config.py` calls `resolve_engine`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from monitor.errors import ConfigError

ENGINE_ENV = "MONITOR_ENGINE"  # overrides engine.kind
BROKER_ENV = "MONITOR_BROKER_URL"  # overrides engine.broker_url; URLs may carry a password
ENGINE_KINDS = ("local", "celery")
# Kombu's transports for Redis and RabbitMQ, the two brokers the README documents.
BROKER_SCHEMES = frozenset({"redis", "rediss", "amqp", "amqps", "pyamqp"})

EngineKind = Literal["local", "celery"]
FETCH_QUEUE = "fetch"  # the Celery queue of poll tasks
EMBED_QUEUE = "embed"  # the Celery queue of match tasks
QUEUES = (FETCH_QUEUE, EMBED_QUEUE)


@dataclass(frozen=True)
class EngineSettings:
    """Where the pipeline runs: one process ("local") or Celery workers ("celery")."""

    kind: EngineKind = "local"
    broker_url: str | None = None
    visibility_timeout: float = 3600.0  # Redis: an unacknowledged task is redelivered after this

    @property
    def distributed(self) -> bool:
        return self.kind == "celery"


def resolve_engine(
    path: Path,
    kind: EngineKind,
    broker_url: str | None,
    visibility_timeout: float,
    database_url: str,
    database_where: str,
) -> EngineSettings:
    """Apply MONITOR_ENGINE and MONITOR_BROKER_URL, then check the combination; every problem at once."""
    problems: list[str] = []
    env_kind = os.environ.get(ENGINE_ENV, "").strip()
    kind_where = "engine.kind"
    if env_kind:
        kind_where = ENGINE_ENV
        if env_kind in ENGINE_KINDS:
            kind = cast(EngineKind, env_kind)
        else:
            problems.append(f"{ENGINE_ENV}: must be \"local\" or \"celery\", not {env_kind!r}")
    broker_where = BROKER_ENV if os.environ.get(BROKER_ENV) else "engine.broker_url"
    broker_url = os.environ.get(BROKER_ENV) or broker_url
    if kind == "celery":
        problems += _celery_problems(kind_where, broker_url, broker_where, database_url, database_where)
    elif broker_url is not None:
        problems += _broker_problems(broker_url, broker_where)
    if problems:
        raise ConfigError(path, problems)
    return EngineSettings(kind, broker_url, visibility_timeout)


def _celery_problems(
    kind_where: str, broker_url: str | None, broker_where: str, database_url: str, database_where: str
) -> list[str]:
    problems = []
    if broker_url is None:
        problems.append(f"engine.broker_url: required when {kind_where} is \"celery\" "
                        f"(set it, or the environment variable {BROKER_ENV})")
    else:
        problems += _broker_problems(broker_url, broker_where)
    # Workers on other machines must see the same feeds, articles and outbox; a SQLite file
    # is one machine's, and its single writer would serialise every worker anyway.
    from sqlalchemy.engine import make_url  # only here: `monitor --help` need not load SQLAlchemy

    if make_url(database_url).get_backend_name() != "postgresql":
        problems.append(f"{database_where}: {kind_where} \"celery\" needs a postgresql:// database "
                        "that every worker shares, not SQLite")
    return problems


def _broker_problems(broker_url: str, where: str) -> list[str]:
    try:
        parts = urlsplit(broker_url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        return [f"{where}: not a broker URL ({exc})"]
    if parts.scheme not in BROKER_SCHEMES or not parts.hostname:
        return [f"{where}: must be a redis://host[:port][/db] or amqp://user@host[:port][/vhost] URL"]
    return []


def shown_broker(broker_url: str | None) -> str:
    """The broker URL without its password, for logs and messages."""
    if broker_url is None:
        return "-"
    parts = urlsplit(broker_url)
    if parts.password is None:
        return broker_url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
