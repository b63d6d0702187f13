"""What the row counters' triggers (migration 0009) cost the writers (issue #17).

    .venv/bin/python bench/row_counts.py [--db sqlite,postgresql] [--messages 300] [--bulk 20000] [--repeat 3]

Two databases side by side, one at revision 0008 (no counters) and one at the head, and on
each, alternating, `--repeat` times:

  outbox       --messages alerts through the outbox as the deliverer writes them: queued,
               claimed, settled sent; one short transaction each (an insert, two status updates)
  inserts      --bulk alert rows in one transaction, one INSERT statement a row (executemany;
               psycopg pipelines them): the trigger's cost per statement, at its worst
  bulk delete  those rows in one DELETE (a retention batch)

Prints the median seconds of each and the ratio with counters / without.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, insert, text

from monitor.types import AlertStatus
from storage.db import open_engine, upgrade
from storage.outbox import Outbox
from storage.tables import AlertRow

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START = datetime(2026, 1, 1, tzinfo=UTC)


def operations(engine: Engine, messages: int, bulk: int) -> dict[str, Callable[[], object]]:
    ticks = count()
    outbox = Outbox(engine, clock=lambda: START + timedelta(microseconds=next(ticks)))

    def deliver() -> None:
        for _ in range(messages):
            item = outbox.add_test("#bench")
            outbox.claim(item)
            outbox.settle(item, AlertStatus.SENT, ts="1.0")

    def inserts() -> None:
        rows = [{"key": f"bulk:{n}", "kind": "test", "channel": "#bulk", "status": "sent", "attempts": 1,
                 "next_attempt_at": START, "created_at": START} for n in range(bulk)]
        with engine.begin() as connection:
            connection.execute(insert(AlertRow), rows)

    def bulk_delete() -> None:
        with engine.begin() as connection:
            connection.execute(delete(AlertRow).where(AlertRow.channel == "#bulk"))

    return {"outbox": deliver, "inserts": inserts, "bulk delete": bulk_delete}


@contextmanager
def databases(kind: str, folder: Path) -> Iterator[dict[str, Engine]]:
    """Engines at revision 0008 and at the head, dropped afterwards."""
    names = ("without", "with")
    if kind == "sqlite":
        for name in names:
            (folder / f"{name}.db").unlink(missing_ok=True)
        urls = {name: f"sqlite:///{folder / name}.db" for name in names}
    else:
        schemas = {name: f"bench_counts_{name}_{uuid.uuid4().hex[:8]}" for name in names}
        _each_schema("CREATE SCHEMA", schemas.values())
        urls = {name: f"{POSTGRES}?options=-csearch_path%3D{schema}" for name, schema in schemas.items()}
    engines = {name: open_engine(url) for name, url in urls.items()}
    upgrade(engines["without"], "0008")
    upgrade(engines["with"])
    try:
        yield engines
    finally:
        for engine in engines.values():
            engine.dispose()
        if kind != "sqlite":
            _each_schema("DROP SCHEMA", schemas.values(), " CASCADE")


def _each_schema(statement: str, schemas: Iterable[str], suffix: str = "") -> None:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for schema in schemas:
            connection.execute(text(f'{statement} "{schema}"{suffix}'))
    admin.dispose()


def measure(
    engines: dict[str, Engine], messages: int, bulk: int, repeat: int
) -> dict[str, tuple[float, float]]:
    """Median seconds (with, without) of each operation, the two sides alternating."""
    steps = {name: operations(engine, messages, bulk) for name, engine in engines.items()}
    samples: dict[str, dict[str, list[float]]] = {op: {"with": [], "without": []} for op in steps["with"]}
    for round_ in range(repeat):
        for op in samples:
            for side in ("with", "without") if round_ % 2 == 0 else ("without", "with"):
                started = time.perf_counter()
                steps[side][op]()
                samples[op][side].append(time.perf_counter() - started)
    return {op: (statistics.median(s["with"]), statistics.median(s["without"])) for op, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/narrative-monitor-bench-row-counts"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    for kind in args.db.split(","):
        with databases(kind, args.workdir) as engines:
            results = measure(engines, args.messages, args.bulk, args.repeat)
        print(f"\n{kind}: medians of {args.repeat}")
        print(f"  {'operation':<12} {'counters':>9} {'none':>9} {'ratio':>7}")
        for op, (counted, plain) in results.items():
            print(f"  {op:<12} {counted:8.3f}s {plain:8.3f}s {counted / plain:6.2f}x")


if __name__ == "__main__":
    main()
