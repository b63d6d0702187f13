"""Bulk rows for bench/bigdb.py: a year of articles, keys, matches, alerts, digests and recent vectors.

Written through the driver (executemany on SQLite, COPY on PostgreSQL) into the project's
tables; the repository's per-article path would take hours for a million articles.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select, text

from monitor.matching.embedders import HashingEmbedder
from monitor.matching.narrative_files import STARTER_NARRATIVES, read_narratives
from monitor.types import Feed
from storage.narratives_repo import MatchStore
from storage.repo import Repository
from storage.tables import ArticleRow

CHUNK = 20_000
YEAR = timedelta(days=365)
VECTOR_DAYS = 7  # what [storage] vector_retention keeps by default
PASSAGES = 4
_COLUMNS = {
    "articles": ("id", "feed_id", "guid", "guid_hash", "url", "title", "text", "author", "language",
                 "published_at", "fetched_at", "updated_at", "content_hash", "duplicate_of"),
    "article_sources": ("feed_id", "guid_hash", "article_id", "first_seen_at"),
    "matches": ("id", "article_id", "narrative_id", "score", "tier", "passage", "evidence", "model_id",
                "created_at", "updated_at"),
    "alerts": ("id", "key", "kind", "channel", "status", "article_id", "narrative_id", "parent_id", "feed_id",
               "attempts", "next_attempt_at", "last_error", "ts", "created_at", "sent_at"),
    "article_passages": ("article_id", "model_id", "idx", "text", "vector"),
    "digests": ("period", "status", "attempts", "last_error", "destination", "sent_at", "updated_at"),
}
_WORDS = ["minister", "budget", "election", "weather", "storm", "court", "ruling", "market", "energy",
          "talks", "border", "vaccine", "protest", "harvest", "strike", "council", "report", "study"]


def fill(engine: Engine, articles: int, feeds: Sequence[Feed], rng: np.random.Generator,
         days: int = 365) -> None:
    """Feeds and the starter narratives; then a year of `articles` articles and what hangs off
    them, of which only the last `days` days are written."""
    Repository(engine).sync_feeds(feeds)
    store = MatchStore(engine)
    if store.narratives_version()[0] == 0:
        store.upsert_narratives(read_narratives(STARTER_NARRATIVES).narratives)
    with engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(ArticleRow)) or 0
    first = 1 + int(articles * (1 - days / 365))
    if articles == 0 or stored >= articles + 1 - first:
        if stored:
            print(f"  reusing {stored:,} articles")
        return
    narratives = [n.id for n in store.narratives()]
    now = datetime.now(UTC)
    started = time.perf_counter()
    feed_ids = [f.id for f in feeds]
    ids = range(first, articles + 1)
    _bulk(engine, "articles", (_article(i, articles, feed_ids, now) for i in ids))
    _bulk(engine, "article_sources", ((r[1], r[3], r[0], r[10]) for r in
                                      (_article(i, articles, feed_ids, now) for i in ids)))
    _bulk(engine, "matches", (m for m in _matches(articles, narratives, now, rng) if m[1] >= first))
    _bulk(engine, "alerts", (a for a in _alerts(articles, narratives, feed_ids, now) if a[5] >= first))
    _bulk(engine, "article_passages", _passages(articles, now, rng))
    _bulk(engine, "digests", ((str((now - timedelta(days=d)).date()), "sent", 1, None, "file", now, now)
                              for d in range(1, days + 1)))
    _finish(engine)
    print(f"  filled {len(ids):,} articles in {time.perf_counter() - started:.0f} s")


def _moment(i: int, total: int, now: datetime) -> datetime:
    return now - YEAR + YEAR * (i / total)


def _article(i: int, total: int, feed_ids: Sequence[str], now: datetime) -> tuple[Any, ...]:
    fetched = _moment(i, total, now)
    guid = f"bench-{i}"
    words = " ".join(_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(60))
    body = f"Article {i}: {words}."
    return (i, feed_ids[i % len(feed_ids)], guid, hashlib.sha256(guid.encode()).hexdigest(),
            f"https://news{i % 997}.example/{i}", f"Headline {i}", body, None, "en",
            fetched - timedelta(minutes=i % 120), fetched, None,
            hashlib.sha256(body.encode()).hexdigest(), None)


def _matches(total: int, narratives: Sequence[str], now: datetime,
             rng: np.random.Generator) -> Iterator[tuple[Any, ...]]:
    scores = rng.uniform(0.58, 0.9, total // 5 + 1)
    for n, i in enumerate(range(5, total + 1, 5)):
        moment, score = _moment(i, total, now), float(scores[n])
        yield (n + 1, i, narratives[i % len(narratives)], score, "alert" if score >= 0.7 else "watch",
               f"passage of {i}", f"evidence of {i}", "hashing-256", moment, moment)


def _alerts(total: int, narratives: Sequence[str], feed_ids: Sequence[str],
            now: datetime) -> Iterator[tuple[Any, ...]]:
    for n, i in enumerate(range(100, total + 1, 100)):
        moment = _moment(i, total, now)
        yield (n + 1, f"bench:{i}", "alert", "#alerts", "sent", i, narratives[i % len(narratives)], None,
               feed_ids[i % len(feed_ids)], 1, moment, None, f"{i}.0001", moment, moment)


def _passages(total: int, now: datetime, rng: np.random.Generator) -> Iterator[tuple[Any, ...]]:
    first = max(1, int(total * (1 - VECTOR_DAYS / 365)))
    model = HashingEmbedder()
    for i in range(first, total + 1):
        vectors = rng.standard_normal((PASSAGES, model.dimension), dtype=np.float32)
        for idx in range(PASSAGES):
            yield (i, model.model_id, idx, f"passage {idx} of {i}", vectors[idx].tobytes())


def _bulk(engine: Engine, table: str, rows: Iterator[tuple[Any, ...]]) -> None:
    columns = _COLUMNS[table]
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            while chunk := [_sqlite_row(row) for _, row in zip(range(CHUNK), rows, strict=False)]:
                cursor.execute("BEGIN")
                cursor.executemany(statement, chunk)
                cursor.execute("COMMIT")
        connection.commit()
    finally:
        connection.close()
    print(f"  {table} written")


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # As SQLAlchemy stores a DateTime in SQLite: naive UTC text.
    return tuple(v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
                 for v in row)


def _finish(engine: Engine) -> None:
    """Feeds' counts, sequences past the rows written, planner statistics (PostgreSQL: autovacuum's job)."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE feeds SET article_count = (SELECT count(*) FROM article_sources "
                                "WHERE article_sources.feed_id = feeds.id)"))
        if engine.dialect.name == "postgresql":
            for table in ("articles", "matches", "alerts"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
            connection.execute(text("ANALYZE"))
