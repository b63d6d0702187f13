"""A year of data (issue #17): the everyday operations on a full database against an empty one.

    .venv/bin/python bench/bigdb.py [--articles 1000000] [--db sqlite,postgresql] [--repeat 3]

Fills a SQLite file and a throw-away PostgreSQL schema (database `test`) with `--articles`
articles over the last 365 days (bulk inserts through the driver: executemany on SQLite, COPY
on PostgreSQL), one (feed, guid) key each, a match for one article in five, a sent alert for
one in a hundred, a digest row a day and passage vectors for the last 7 days (what
retention keeps), then times each operation against the same schema, feeds and narratives
with no articles, side by side and alternating, `--repeat` times:

  poll 304     a round of --feeds feeds that all answer 304 (loopback server in this process)
  poll new     --new-feeds feeds with 10 new items each, stored
  match        the matching pass over those items (the model-free "hashing" embedder: the model's
               cost does not grow with the database, the queries around it do)
  feeds list / matches --since 1d / status   the CLI commands, each a whole process
  digest       building yesterday's digest (alerts.digest_build.build_digest)

Prints the median seconds of each, the ratio full/empty and PASS/MISS against 1.5x.
`--explain` prints the query plans of the queries these operations run on the full database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from bigdb_explain import before_after, explain
from bigdb_fill import fill
from sqlalchemy import create_engine, text

from alerts.digest_build import CHART_DAYS, build_digest, period_of
from monitor.config import Settings, load_settings
from monitor.flow import make_pipeline
from monitor.matching.stage import build_stage
from monitor.types import Feed
from storage.db import open_engine, upgrade
from storage.digest_repo import DigestStore
from storage.narratives_repo import MatchStore
from storage.ops_repo import read_figures
from storage.repo import Repository

TARGET = 1.5
POSTGRES = os.environ.get("MONITOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NEW_ITEMS = 10
RECENT_DAYS = CHART_DAYS + 2  # what the "empty" database holds: the digest's days, no history


class _Feeds(BaseHTTPRequestHandler):
    """/static/<i>.xml answers 304 to its ETag; /r<round>/<i>.xml carries new items every round."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        etag = f'"{self.path}"'
        if self.path.startswith("/static/") and self.headers.get("If-None-Match") == etag:
            self._answer(304, b"", etag)
            return
        name = self.path.strip("/").replace("/", "-").removesuffix(".xml")
        items = "".join(
            f"<item><guid>{name}-{n}</guid><link>https://{name}.example/{n}</link>"
            f"<title>Report {name} {n}</title><description>Officials said on {name} that item {n} "
            f"covers the budget, the weather and a local election.</description></item>"
            for n in range(NEW_ITEMS if self.path.startswith("/r") else 3))
        body = f'<rss version="2.0"><channel><title>{name}</title>{items}</channel></rss>'
        self._answer(200, body.encode(), etag)

    def _answer(self, status: int, body: bytes, etag: str) -> None:
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


class Side:
    """One database (full or empty) with its config file and its pipeline."""

    def __init__(self, name: str, url: str, folder: Path, base: str, feeds: int) -> None:
        self.name, self.url, self.folder, self.base, self.feeds = name, url, folder, base, feeds
        self.engine = open_engine(url)
        upgrade(self.engine)
        self.rounds = 0
        self.poll_seconds = 0.0
        self.settings = self.configure([])

    def configure(self, extra: list[str]) -> Settings:
        lines = ['[monitor]\nper_host_delay = "0s"\nper_host_concurrency = 16\nmax_concurrency = 16\n',
                 '[matching]\nmodel = "hashing"\nmultilingual_model = ""\n']
        lines += [f'[feeds.s{i:04d}]\nurl = "{self.base}/static/{i}.xml"\n' for i in range(self.feeds)]
        lines += extra
        path = self.folder / f"{self.name}.toml"
        path.write_text("\n".join(lines), encoding="utf-8")
        os.environ["MONITOR_DATABASE_URL"] = self.url
        self.settings = load_settings(path)
        return self.settings

    def static(self) -> list[Feed]:
        return [f for f in self.settings.feeds() if f.id.startswith("s")]


def _median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def _timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _cli(side: Side, *args: str) -> float:
    env = {**os.environ, "MONITOR_DATABASE_URL": side.url, "COLUMNS": "200"}
    command = [sys.executable, "-m", "monitor.cli.main", "--config", str(side.settings.path), *args]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed on {side.name}: {done.stderr[-500:]}")
    return seconds


def _operations(side: Side, new_feeds: int) -> dict[str, Callable[[], object]]:
    def poll_304() -> object:
        pipeline = make_pipeline(side.settings, side.engine, sync=False)
        try:
            results = pipeline.poll_many(side.static(), 16)
        finally:
            pipeline.fetcher.close()
        assert all(r.http_status == 304 for r in results), {r.http_status for r in results}
        return results

    def poll_new() -> object:
        side.rounds += 1
        extra = [f'[feeds.r{side.rounds}n{i}]\nurl = "{side.base}/r{side.rounds}/{i}.xml"\n'
                 for i in range(new_feeds)]
        settings = side.configure(extra)
        pipeline = make_pipeline(settings, side.engine)  # syncs the new feeds (outside the timing)
        fresh = [f for f in settings.feeds() if f.id.startswith(f"r{side.rounds}n")]
        started = time.perf_counter()
        results = pipeline.poll_many(fresh, 16)
        side.poll_seconds = time.perf_counter() - started
        pipeline.fetcher.close()
        assert sum(r.new for r in results) == new_feeds * NEW_ITEMS, [r.error for r in results][:3]
        return results

    stage = build_stage(side.settings, side.engine)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    feeds = side.settings.feeds()
    since = datetime.now(UTC) - timedelta(days=1)
    return {
        "poll 304": poll_304,
        "poll new": poll_new,
        "match": stage.run_pending,
        "feeds list": lambda: _cli(side, "feeds", "list"),
        "matches --since 1d": lambda: _cli(side, "matches", "--since", "1d"),
        "status": lambda: _cli(side, "status"),
        "digest": lambda: build_digest(DigestStore(side.engine), period_of(yesterday, "UTC")),
        # What those three commands read, without the process start that dominates them.
        "feeds list (reads)": lambda: Repository(side.engine).feed_reports(feeds),
        "matches (reads)": lambda: MatchStore(side.engine).matches(since=since),
        "status (reads)": lambda: read_figures(side.engine, feeds),
    }


def _in_process(side: Side, new_feeds: int) -> dict[str, Callable[[], object]]:
    """The operations with the CLI commands' reads called in this process, for their plans."""
    operations = _operations(side, new_feeds)
    return {name: operation for name, operation in operations.items() if name.split()[0] not in
            ("feeds", "matches", "status") or name.endswith("(reads)")}


def warm(side: Side) -> None:
    """Poll the static feeds once: they answer 200 with an ETag, then 304 to it."""
    pipeline = make_pipeline(side.settings, side.engine)
    pipeline.poll_many(side.static(), 16)
    pipeline.fetcher.close()


def measure(full: Side, empty: Side, repeat: int, new_feeds: int) -> dict[str, tuple[float, float]]:
    """Median seconds (full, empty) of each operation, the two sides alternating."""
    operations = {side.name: _operations(side, new_feeds) for side in (full, empty)}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in operations[full.name]}
    for _ in range(repeat):
        for name in samples:
            for side in (full, empty) if _ % 2 == 0 else (empty, full):
                seconds = _timed(operations[side.name][name])
                if name == "poll new":
                    seconds = side.poll_seconds  # the fetch and store only, not the feed sync
                samples[name].setdefault(side.name, []).append(seconds)
    return {name: (_median(s[full.name]), _median(s[empty.name])) for name, s in samples.items()}


def report(kind: str, articles: int, results: dict[str, tuple[float, float]], load: float) -> bool:
    print(f"\n{kind}: {articles:,} articles vs empty, medians (load average at start {load:.1f})")
    print(f"  {'operation':<20} {'full':>9} {'empty':>9} {'ratio':>7}")
    ok = True
    for name, (big, small) in results.items():
        ratio = big / small
        ok &= ratio <= TARGET
        verdict = "PASS" if ratio <= TARGET else "MISS"
        print(f"  {name:<20} {big:8.3f}s {small:8.3f}s {ratio:6.2f}x  {verdict}")
    return ok


def _postgres_schema(name: str) -> Iterator[str]:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{name}"
    finally:
        admin.dispose()


def _drop_schema(name: str) -> None:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    admin.dispose()


def _urls(kind: str, folder: Path, keep: bool) -> tuple[str, str, list[str]]:
    """URLs of the full and the empty database, and the PostgreSQL schemas to drop after."""
    if kind == "sqlite":
        empty = folder / "empty.db"
        empty.unlink(missing_ok=True)
        return f"sqlite:///{folder / 'full.db'}", f"sqlite:///{empty}", []
    suffix = "keep" if keep else uuid.uuid4().hex[:8]
    schemas = [f"bigdb_full_{suffix}", f"bigdb_empty_{uuid.uuid4().hex[:8]}"]
    urls = [next(_postgres_schema(schema)) for schema in schemas]
    return urls[0], urls[1], schemas[1:] if keep else schemas


def main() -> None:
    args = _arguments()
    args.workdir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feeds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"bigdb: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; the machine is shared "
          "with other work, so only the side-by-side ratios mean much")
    ok = True
    for kind in args.db.split(","):
        full_url, empty_url, drop = _urls(kind, args.workdir, args.keep)
        try:
            full = Side("full", full_url, args.workdir, base, args.feeds)
            fill(full.engine, args.articles, full.settings.feeds(), np.random.default_rng(17))
            empty = Side("empty", empty_url, args.workdir, base, args.feeds)
            # No history: only the days the digest reads, so both sides build the same digest.
            fill(empty.engine, args.articles, empty.settings.feeds(), np.random.default_rng(17),
                 days=RECENT_DAYS)
            warm(full)
            warm(empty)
            if args.explain:
                explain(full.engine, _in_process(full, args.new_feeds))
                before_after(full.engine)
            load = os.getloadavg()[0]
            ok &= report(kind, args.articles, measure(full, empty, args.repeat, args.new_feeds), load)
            full.engine.dispose()
            empty.engine.dispose()
        finally:
            for schema in drop:
                _drop_schema(schema)
    server.shutdown()
    sys.exit(0 if ok else 1)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--feeds", type=int, default=300, help="feeds in the 304 round")
    parser.add_argument("--new-feeds", type=int, default=50, help=f"feeds with {NEW_ITEMS} new items each")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/narrative-monitor-bench-bigdb"))
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the full database")
    parser.add_argument("--explain", action="store_true", help="print the query plans on the full database")
    return parser.parse_args()


if __name__ == "__main__":
    main()
