"""Query plans for bench/bigdb.py: every SELECT the everyday operations run, and which scan a whole table.

Each operation runs once in this process with a listener that records its statements; each
distinct SELECT is then explained on the full database (EXPLAIN QUERY PLAN on SQLite,
EXPLAIN on PostgreSQL) and printed when its plan reads a whole big table.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event

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
