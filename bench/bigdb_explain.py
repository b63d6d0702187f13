"""Query plans for bench/bigdb.py: every SELECT the everyday operations run, and which scan a whole table.

Each operation runs once in this process with a listener that records its statements; each
distinct SELECT is then explained on the full database (EXPLAIN QUERY PLAN on SQLite,
EXPLAIN on PostgreSQL) and printed when its plan reads a whole big table.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, event, text

BIG = ("articles", "article_sources", "matches", "alerts", "article_passages")
# SQLite: SCAN walks a whole table or index (SEARCH looks up a range). PostgreSQL: a Seq Scan,
# or an index scan with no Index Cond under it, walks everything.
_SQLITE_SCAN = re.compile(r"\bSCAN (\w+)")
_PG_NODE = re.compile(r"(Seq Scan|Index Scan|Index Only Scan)(?: Backward)?(?: using \w+)? on (\w+)")


def record(engine: Engine, operations: dict[str, Callable[[], object]]) -> dict[str, list[tuple[str, Any]]]:
    """The distinct statements each operation executed, with the parameters of their first run."""
    seen: dict[str, list[tuple[str, Any]]] = {}
    current: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        reads = statement.lstrip().upper().startswith(("SELECT", "WITH")) and not many
        if reads and statement not in {s for s, _p in current}:
            current.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        for name, operation in operations.items():
            current = []
            operation()
            seen[name] = current
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    return seen


def plan(engine: Engine, statement: str, parameters: Any) -> list[str]:
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(prefix + statement, parameters)
        rows = cursor.fetchall()
    finally:
        connection.close()
    return [" ".join(str(v) for v in row[-1:]) for row in rows]


def full_scans(engine: Engine, lines: list[str]) -> list[str]:
    """The big tables the plan reads whole."""
    if engine.dialect.name == "sqlite":
        return [m.group(1) for line in lines if (m := _SQLITE_SCAN.search(line)) and m.group(1) in BIG]
    found = []
    for n, line in enumerate(lines):
        node = _PG_NODE.search(line)
        if node is None or node.group(2) not in BIG:
            continue
        details = list(itertools.takewhile(lambda d: "->" not in d, lines[n + 1:]))
        if node.group(1) == "Seq Scan" or not any("Index Cond" in d for d in details):
            found.append(node.group(2))
    return found


def explain(engine: Engine, operations: dict[str, Callable[[], object]]) -> None:
    """Print the plan of every statement that reads a whole big table."""
    print(f"\nquery plans on the full {engine.dialect.name} database (statements that scan a big table):")
    for name, statements in record(engine, operations).items():
        flagged = [(s, p, lines) for s, p in statements
                   if full_scans(engine, lines := plan(engine, s, p))]
        print(f"  {name}: {len(statements)} distinct SELECT(s), {len(flagged)} with a full scan")
        for statement, _params, lines in flagged:
            print("    " + " ".join(statement.split())[:400])
            for line in lines:
                print("      " + line)


# The queries migration 0008 gave an index (index, query): their plans without it and with it.
FIXED = (
    ("ix_articles_fetched_at", "SELECT articles.id FROM articles WHERE articles.duplicate_of IS NULL "
     "AND articles.fetched_at >= :since AND NOT (EXISTS (SELECT 1 FROM article_passages WHERE "
     "article_passages.article_id = articles.id)) ORDER BY articles.fetched_at, articles.id LIMIT 64"),
    ("ix_articles_duplicate_of", "SELECT articles.id, articles.feed_id FROM articles "
     "WHERE articles.duplicate_of = 4242"),
    ("ix_alerts_parent_id", "SELECT alerts.id FROM alerts WHERE alerts.parent_id = 42 ORDER BY alerts.id"),
)
# `feeds list` counted every key of every feed; now it reads each feed's count.
COUNTED = ("SELECT article_sources.feed_id, count(*) FROM article_sources GROUP BY article_sources.feed_id",
           "SELECT feeds.id, feeds.article_count FROM feeds")


def before_after(engine: Engine) -> None:
    """Each fixed query's plan without its index (dropped in a transaction rolled back) and with it."""
    since = datetime.now(UTC) - timedelta(days=7)
    bound = since.strftime("%Y-%m-%d %H:%M:%S.%f") if engine.dialect.name == "sqlite" else since
    print(f"\nplans fixed by migration 0008 ({engine.dialect.name}):")
    for index, query in FIXED:
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(text(f"DROP INDEX {index}"))
            before = _plan(connection, query, bound)
            transaction.rollback()
        with engine.connect() as connection:
            after = _plan(connection, query, bound)
        print(f"  {index}: {query}\n    before: " + "\n            ".join(before)
              + "\n    after:  " + "\n            ".join(after))
    with engine.connect() as connection:
        old, new = (_plan(connection, query, bound) for query in COUNTED)
    print(f"  feeds list: {COUNTED[0]}\n    before: " + "\n            ".join(old)
          + f"\n  now: {COUNTED[1]}\n    after:  " + "\n            ".join(new))


def _plan(connection: Connection, query: str, since: object) -> list[str]:
    prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
    rows = connection.execute(text(prefix + query), {"since": since} if ":since" in query else {})
    return [str(row[-1]) for row in rows]
