"""Operational figures for /metrics and `monitor status`, read from the database.

They are read from the database, not kept in the process, so they stay right when several
processes (the scheduler, any number of workers) poll, match and deliver on one database. The
counts of articles, matches and alerts come from `row_counts`, which the database's triggers
keep beside the rows (migration 0009): a few rows to read however big the tables grow.
Read-only: nothing here writes or takes a lock beyond what a read needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from monitor.types import AlertStatus, DigestState, DigestStatus, Feed, FeedStatus, OpsFigures, Tier
from storage.db import reader
from storage.repo import shown_status
from storage.tables import AlertRow, ArticleRow, DigestRow, FeedRow, MatchRow, RowCountRow

_INACTIVE = {FeedStatus.DISABLED, FeedStatus.REMOVED}


def read_figures(engine: Engine, feeds: Sequence[Feed]) -> OpsFigures:
    """Feeds by status, articles, matches by tier, outbox by status and the last digest."""
    with reader(engine).connect() as connection:  # no write lock: a scrape never waits for pollers
        feed_counts, failing, last_poll = _feeds(connection, feeds)
        counts = _row_counts(connection)
        articles = counts.get(ArticleRow.__tablename__, {}).get("", 0)
        matches = _every_key(counts.get(MatchRow.__tablename__, {}), [t.value for t in Tier])
        alerts = _every_key(counts.get(AlertRow.__tablename__, {}), [s.value for s in AlertStatus])
        digest, sent = _digest(connection)
    return OpsFigures(feeds=feed_counts, failing_feeds=failing, last_poll=last_poll, articles=articles,
                      matches=matches, alerts=alerts, last_digest=digest, last_digest_sent=sent)


def ping(engine: Engine) -> None:
    """Raise unless the database answers a trivial query.

    On the raw driver connection: no transaction is begun, so on SQLite a health check never
    queues behind a writer for the write lock that every ORM transaction here takes.
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchone()
        cursor.close()
    finally:
        connection.close()


def _feeds(connection: Connection, feeds: Sequence[Feed]) -> tuple[dict[str, int], int, datetime | None]:
    configured = {feed.id: feed for feed in feeds}
    rows = connection.execute(
        select(FeedRow.id, FeedRow.status, FeedRow.consecutive_errors,
               FeedRow.last_success_at, FeedRow.last_error_at)
    ).all()
    counts = Counter({status.value: 0 for status in FeedStatus})
    failing = 0
    polls: list[datetime] = []
    for feed_id, stored, errors, success, error in rows:
        status = shown_status(FeedStatus(stored), configured.get(feed_id))
        counts[status.value] += 1
        failing += status not in _INACTIVE and errors > 0
        polls += [moment for moment in (success, error) if moment is not None]
    # Configured but not synced yet (a config edit no process has applied): never polled.
    synced = {row[0] for row in rows}
    for feed in configured.values():
        if feed.id not in synced:
            counts[shown_status(FeedStatus.NEW, feed).value] += 1
    return dict(counts), failing, max(polls, default=None)


def _row_counts(connection: Connection) -> dict[str, dict[str, int]]:
    """Rows per table and key, from the counters; keys that count nothing are left out."""
    total = func.sum(RowCountRow.n)
    rows = connection.execute(
        select(RowCountRow.name, RowCountRow.key, total).group_by(RowCountRow.name, RowCountRow.key)
    )
    counts: dict[str, dict[str, int]] = {}
    for name, key, n in rows:
        if n:  # as a count would not list a value no row holds any more
            counts.setdefault(name, {})[key] = int(n)
    return counts


def _every_key(found: dict[str, int], keys: Sequence[str]) -> dict[str, int]:
    """`found` with every expected key present, 0 if missing, so no series disappears."""
    return {key: found.get(key, 0) for key in keys} | found


def _digest(connection: Connection) -> tuple[DigestState | None, datetime | None]:
    latest = connection.execute(
        select(DigestRow.period, DigestRow.status, DigestRow.attempts, DigestRow.last_error)
        .order_by(DigestRow.period.desc()).limit(1)
    ).first()
    sent = connection.scalar(select(func.max(DigestRow.sent_at)))
    state = DigestState(latest[0], DigestStatus(latest[1]), latest[2], latest[3]) if latest else None
    return state, sent
