"""Cluster-wide locks for distributed workers: PostgreSQL session-level advisory locks.

An advisory lock belongs to a database session, so a worker that is killed loses its locks
the moment PostgreSQL sees its connection close: no expiry to tune, and a slow poll can
never outlive its lock. SQLite has one writer anyway and never reaches here (the celery
engine refuses it at configuration time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text


def open_lock_engine(url: str, holders: int) -> Engine:
    """Connections for locks alone, one per possible holder: a lock held for a whole poll must
    never take the last pooled connection that the poll itself needs."""
    return create_engine(url, pool_size=holders, max_overflow=0, pool_pre_ping=True)


def lock_key(name: str) -> int:
    """A signed 64-bit key from a name (the one-argument form of pg_advisory_lock)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def try_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Hold the lock `name` for the block if it is free; yields whether it was taken (never waits)."""
    if engine.dialect.name != "postgresql":
        raise RuntimeError("advisory locks need PostgreSQL")
    key = lock_key(name)
    connection = engine.connect()
    try:
        taken = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        connection.commit()  # the lock is the session's; no transaction stays open while we work
        yield taken
        if taken:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
    except BaseException:
        # Unlocking may have failed: a pooled connection must never go back still holding it.
        connection.invalidate()
        raise
    finally:
        connection.close()
