"""Bytes per article with and without retention (issue #17): the database over simulated days.

    .venv/bin/python bench/retention.py [--days 40] [--per-day 250] [--db sqlite,postgresql]

Stores `--per-day` articles a day for `--days` days through the repository (each with 13
passages of 384 float32, as all-MiniLM-L6-v2 keeps for a ~4 KB article, and one match in
ten), into two databases side by side: one that keeps everything (retention = 0) and one
pruned at the end of every simulated day with `monitor.service.retention` at the retention
given (default: the shortest allowed, 14 days of texts and 7 of vectors, so the steady state
comes within the run; the default 90 days reaches the same state later). Prints the bytes
in use after the run and what each day added over the last `--tail` days: flat once pruning
keeps pace, except the (feed, guid) keys kept forever.
"""

from __future__ import annotations

import argparse
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, create_engine, text

from monitor.config import load_settings
from monitor.service.retention import prune_plan
from monitor.types import Article, Feed, Match, Narrative, Tier
from storage.db import open_engine, upgrade
from storage.narratives_repo import MatchStore
from storage.repo import Repository
from storage.retention import prune

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSAGES, DIMENSION = 13, 384
START = datetime(2026, 1, 1, tzinfo=UTC)
TABLES = ("articles", "article_sources", "article_passages", "matches", "alerts")


def used_bytes(engine: Engine) -> int:
    """Bytes the data takes: SQLite pages in use; PostgreSQL tables with indexes after VACUUM."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = connection.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int((pages - free) * size)
        return int(sum(connection.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()
                       for t in TABLES))


def _vacuum(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":  # what autovacuum does: dead rows' space reusable
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM"))


def _day(repo: Repository, store: MatchStore, day: int, per_day: int, rng: np.random.Generator) -> None:
    state = repo.feed_state("wire")
    assert state is not None
    moment = START + timedelta(days=day)
    articles = []
    for n in range(per_day):
        guid = f"{day}-{n}"
        body = " ".join(f"Sentence {k} of article {guid} says what officials reported today." * 5
                        for k in range(PASSAGES))
        articles.append(Article(
            feed_id="wire", guid=guid, guid_hash=hashlib.sha256(guid.encode()).hexdigest(),
            url=f"https://wire.example/{guid}", title=f"Article {guid}", text=body, author=None,
            language="en", published=moment, fetched=moment,
            content_hash=hashlib.sha256(body.encode()).hexdigest()))
    stored = repo.record_success(state, articles)
    passages = {}
    for s in stored:
        assert s.id is not None
        passages[s.id] = ([f"passage {k}" * 20 for k in range(PASSAGES)],
                          rng.standard_normal((PASSAGES, DIMENSION), dtype=np.float32))
    matches = [Match(s.id, "claim", 0.75, Tier.ALERT, "passage", "evidence")
               for s in stored[::10] if s.id is not None]
    store.save_passages_and_matches("all-MiniLM-L6-v2", passages, matches)


def run(kind: str, url: str, args: argparse.Namespace, pruned: bool) -> list[int]:
    """Bytes in use after each day."""
    engine = open_engine(url)
    upgrade(engine)
    clock: list[datetime] = [START]
    repo = Repository(engine, clock=lambda: clock[0])
    repo.sync_feeds([Feed("wire", "https://wire.example/feed")])
    store = MatchStore(engine, clock=lambda: clock[0])
    store.upsert_narratives([Narrative(id="claim", title="A claim")])
    config = args.workdir / "retention.toml"
    config.write_text(f'[storage]\nretention = "{args.retention}"\nvector_retention = "{args.vectors}"\n')
    settings = load_settings(config)
    sizes = []
    rng = np.random.default_rng(1)
    for day in range(args.days):
        clock[0] = START + timedelta(days=day, hours=23)
        _day(repo, store, day, args.per_day, rng)
        if pruned:
            prune(engine, prune_plan(settings, {}, clock[0]))
        if day >= args.days - args.tail - 1:
            _vacuum(engine)
            sizes.append(used_bytes(engine))
    engine.dispose()
    return sizes


def _databases(kind: str, folder: Path) -> tuple[list[str], Callable[[], None]]:
    if kind == "sqlite":
        paths = [folder / "kept.db", folder / "pruned.db"]
        for path in paths:
            path.unlink(missing_ok=True)
        return [f"sqlite:///{path}" for path in paths], lambda: None
    schemas = [f"retention_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for schema in schemas:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return [f"{POSTGRES}?options=-csearch_path%3D{schema}" for schema in schemas], drop


def main() -> None:
    args = _arguments()
    args.workdir.mkdir(parents=True, exist_ok=True)
    total = args.days * args.per_day
    print(f"retention: {args.days} days x {args.per_day} articles ({total:,}), {PASSAGES} passages of "
          f"{DIMENSION} float32 each; pruned side: retention {args.retention}, vectors {args.vectors}")
    for kind in args.db.split(","):
        urls, drop = _databases(kind, args.workdir)
        try:
            kept, pruned = run(kind, urls[0], args, False), run(kind, urls[1], args, True)
        finally:
            drop()
        print(f"\n{kind}:")
        for name, sizes in (("keep everything", kept), ("with retention", pruned)):
            daily = (sizes[-1] - sizes[0]) / args.tail / args.per_day
            print(f"  {name:<16} {sizes[-1] / 2**20:8.1f} MB in use = {sizes[-1] / total:8.0f} bytes per "
                  f"article ingested; last {args.tail} days added {daily:7.0f} bytes per new article")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--per-day", type=int, default=250)
    parser.add_argument("--tail", type=int, default=10, help="days over which the growth is measured")
    parser.add_argument("--retention", default="14d")
    parser.add_argument("--vectors", default="7d")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/narrative-monitor-bench-retention"))
    return parser.parse_args()


if __name__ == "__main__":
    main()
