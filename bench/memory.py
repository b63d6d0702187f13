"""Benchmark 4 of issue #6: peak RSS of `monitor run` with 1,000 feeds and 100,000 narratives.

    .venv/bin/python bench/memory.py [--feeds 1000] [--narratives 100000] [--workdir DIR]
                                     [--backend onnx|onnx-int8|torch] [--no-multilingual]

Builds (or reuses, in --workdir) a SQLite database holding the narratives with random unit
vectors already stored for the default model, so nothing has to embed 100k texts; serves
generated feeds (bench/feedserve.py, a separate process, one loopback port per feed); runs
`monitor --json-logs run` as a subprocess until every feed was polled and every new article
embedded and matched; then stops it with SIGINT and reports its peak RSS (VmHWM, and the
kernel's ru_maxrss on exit) against the 1.5 GB target, and how long the index took to load.
With an ONNX backend the model is exported into the run's data_dir first, by this process:
the one-off export (torch loaded) is not what a monitor that has run before holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from feedserve import FeedFarm
from sqlalchemy import delete, func, insert, select

from monitor.config import MatchingSection
from monitor.matching.backends import BACKENDS, resolve
from monitor.matching.embedders import Embedder
from monitor.matching.multilingual import UseEmbedder
from monitor.matching.scoring import narrative_texts
from monitor.matching.stage import make_embedder
from monitor.types import Narrative
from storage.db import open_engine, upgrade
from storage.narratives_repo import MatchStore, _narrative_fields
from storage.tables import ArticlePassageRow, ArticleRow, FeedRow, NarrativeRow, NarrativeVectorRow

TARGET_BYTES = 1.5 * 2**30
CHUNK = 5_000  # narratives per transaction while building the database
MONITOR = Path(sys.executable).with_name("monitor")


# The default configuration pairs the multilingual encoder with the model (issue #14);
# --no-multilingual measures `multilingual_model = ""`, --backend another `[matching] backend`.
MULTILINGUAL = [MatchingSection().multilingual_model]
BACKEND = [MatchingSection().backend]
MODELS = [Path("data/models")]  # the run's data_dir/models, where ONNX exports are cached


def default_embedder() -> Embedder:
    """The embedder of the configuration measured."""
    m = MatchingSection()
    return make_embedder(m.model, m.query_prompt, m.passage_prompt, MULTILINGUAL[0], backend=BACKEND[0],
                         cache_dir=MODELS[0])


def export_model() -> None:
    """Export the ONNX model into the run's data_dir now (a no-op when cached), not during the run."""
    if resolve(BACKEND[0]).startswith("onnx"):
        started = time.perf_counter()
        default_embedder().embed(["warm up"], "query")
        print(f"{BACKEND[0]} model ready in {MODELS[0]} ({time.perf_counter() - started:.0f} s)")


def default_dimension() -> int:
    """Its vectors' width: all-MiniLM-L6-v2's 384, plus 512 of the multilingual encoder when paired."""
    return 384 + (UseEmbedder.dimension if MULTILINGUAL[0] else 0)


def add_history(url: str, passages: int, dimension: int) -> None:
    """Stored articles with `passages` passage vectors, as a monitor that has run a while holds.

    The matching stage samples up to 2,000 of them at start to calibrate the multilingual
    route against 100,000 narratives: without them that step costs nothing and is not measured.
    """
    engine = open_engine(url)
    model_id, now = default_embedder().model_id, datetime.now(UTC)
    with engine.begin() as connection:
        stored = connection.scalar(select(func.count()).select_from(ArticlePassageRow)) or 0
        if stored >= passages:
            return
        connection.execute(insert(FeedRow), [{"id": "history", "config_url": "https://history.example/",
                                              "url": "https://history.example/", "status": "ok",
                                              "consecutive_errors": 0, "created_at": now}])
        articles = -(-passages // 4)
        connection.execute(insert(ArticleRow), [
            {"id": 1 + i, "feed_id": "history", "guid": f"h{i}", "guid_hash": f"h{i}", "url": None,
             "title": f"Earlier article {i}", "text": "Earlier text.", "language": "en",
             "published_at": now, "fetched_at": now, "content_hash": f"h{i}"} for i in range(articles)])
        vectors = np.random.default_rng(5).standard_normal((articles * 4, dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        connection.execute(insert(ArticlePassageRow), [
            {"article_id": 1 + n // 4, "model_id": model_id, "idx": n % 4, "text": f"passage {n}",
             "vector": vectors[n].tobytes()} for n in range(articles * 4)])
    engine.dispose()
    print(f"stored {articles * 4:,} earlier passages (the start-up calibration sample)")


def build_database(path: Path, narratives: int, rows: int, dimension: int) -> str:
    """A database with `narratives` narratives and their vectors; reused when it already has them.

    Rows go in with one executemany per chunk into the project's tables, with the repository's
    own field mapping: its per-narrative upsert path costs ~7 ms a narrative here (12 min for 100k).
    """
    url = f"sqlite:///{path}"
    engine = open_engine(url)
    upgrade(engine)
    store = MatchStore(engine)
    model_id = default_embedder().model_id  # no model load: the id is the models' names
    if store.narratives_version()[0] == narratives and store.narratives_missing_vectors(model_id) == []:
        print(f"reusing {path} ({narratives:,} narratives with vectors)")
        return url
    started, rng, now = time.perf_counter(), np.random.default_rng(4), datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(delete(NarrativeRow))  # cascades to the vectors
    for low in range(0, narratives, CHUNK):
        batch = [_narrative(i, rows) for i in range(low, min(low + CHUNK, narratives))]
        vectors = rng.standard_normal((len(batch) * rows, dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with engine.begin() as connection:
            connection.execute(insert(NarrativeRow), [
                {"id": n.id, **_narrative_fields(n), "created_at": now, "updated_at": now} for n in batch
            ])
            connection.execute(insert(NarrativeVectorRow), [
                {"narrative_id": n.id, "model_id": model_id, "row": j, "text": text,
                 "vector": vectors[i * rows + j].tobytes()}
                for i, n in enumerate(batch) for j, text in enumerate(narrative_texts(n))
            ])
        print(f"\r  {low + len(batch):,} narratives stored", end="", flush=True)
    print(f"\nbuilt {path} in {time.perf_counter() - started:.0f} s")
    assert store.narratives_missing_vectors(model_id) == []
    engine.dispose()
    return url


def _narrative(i: int, rows: int) -> Narrative:
    return Narrative(
        id=f"bench-{i:06d}", title=f"Generated claim number {i} about a secret plan",
        summary=f"Benchmark narrative {i}.", tags=("bench",),
        examples=tuple(f"Phrasing {j} of claim {i}" for j in range(rows - 1)),
    )


def write_config(workdir: Path, urls: list[str]) -> Path:
    """feeds.toml: every feed on its own loopback port, polled once in the run (interval 1 h)."""
    lines = ["[monitor]", 'poll_interval = "1h"', 'log_level = "info"', "", "[matching]",
             "starter_narratives = false", f'multilingual_model = "{MULTILINGUAL[0]}"',
             f'backend = "{BACKEND[0]}"', ""]
    for i, url in enumerate(urls):
        lines += [f"[feeds.bench-{i:04d}]", f'url = "{url}"', ""]
    path = workdir / "feeds.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@dataclass
class Progress:
    """What the monitor's JSON log has said so far."""

    polled: set[str] = field(default_factory=set)
    failed: int = 0
    new_articles: int = 0
    matched: int = 0
    passages: int = 0
    index: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def read(self, line: str) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        name = event.get("event")
        if name in {"poll ok", "poll failed", "feed gone; polling stopped"}:
            self.polled.add(event.get("feed", ""))
            self.failed += name != "poll ok"
            self.new_articles += int(event.get("new", 0))
        elif name == "articles matched":
            self.matched += int(event["articles"])
            self.passages += int(event["passages"])
        elif name == "narrative index loaded":
            self.index = event
        elif event.get("level") in {"error", "critical"}:
            self.errors.append(f"{name}: {event.get('exception', '')[-300:]}")


def pending_articles(database: Path) -> int:
    """Stored articles (duplicates left out) that have no passages yet, read-only."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        query = ("SELECT count(*) FROM articles a WHERE a.duplicate_of IS NULL AND NOT EXISTS "
                 "(SELECT 1 FROM article_passages p WHERE p.article_id = a.id)")
        return int(connection.execute(query).fetchone()[0])


def _alive(pid: int) -> bool:
    """Running, not exited (a zombie still has its /proc entry)."""
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def watch(process: subprocess.Popen[bytes], log_path: Path, args: argparse.Namespace,
          database: Path) -> tuple[Progress, int, list[tuple[float, int]]]:
    """Follow the log until the work is done (or the timeout); (progress, VmHWM kB, RSS samples)."""
    progress, started, hwm, samples = Progress(), time.monotonic(), 0, []
    with log_path.open(encoding="utf-8") as log:
        while time.monotonic() - started < args.timeout and _alive(process.pid):
            for line in log:
                progress.read(line)
            hwm = max(hwm, status_kb(process.pid, "VmHWM"))
            samples.append((time.monotonic() - started, status_kb(process.pid, "VmRSS")))
            finished = len(progress.polled) >= args.feeds and progress.matched >= progress.new_articles > 0
            if finished and pending_articles(database) == 0:
                break
            time.sleep(0.5)
        for line in log:
            progress.read(line)
    return progress, hwm, samples


def stop(process: subprocess.Popen[bytes]) -> tuple[int, int]:
    """SIGINT (and a second one if the pass in flight takes long): (exit code, ru_maxrss kB)."""
    for _attempt in range(2):
        process.send_signal(signal.SIGINT)  # the process we started, by its handle
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)  # keeps the child's rusage
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                return process.returncode, usage.ru_maxrss
            time.sleep(0.2)
    process.kill()
    _pid, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss


def run_monitor(args: argparse.Namespace, config: Path, url: str) -> None:
    env = {**os.environ, "MONITOR_CONFIG": str(config), "MONITOR_DATABASE_URL": url, "HF_HUB_OFFLINE": "1"}
    log_path = args.workdir / "monitor.log"
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([str(MONITOR), "--json-logs", "run"], env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
        progress, hwm, samples = watch(process, log_path, args, Path(url.removeprefix("sqlite:///")))
        seconds = time.monotonic() - started
        code, maxrss = stop(process)
    report(args, progress, hwm, maxrss, samples, seconds, code)


def report(args: argparse.Namespace, progress: Progress, hwm_kb: int, maxrss_kb: int,
           samples: list[tuple[float, int]], seconds: float, code: int) -> None:
    peak = max(hwm_kb, maxrss_kb) * 1024
    done = len(progress.polled) >= args.feeds and progress.matched >= progress.new_articles
    print(f"monitor run: {seconds:.0f} s, exit code {code}; {len(progress.polled)}/{args.feeds} feeds polled "
          f"({progress.failed} failed), {progress.new_articles} new articles, {progress.matched} matched "
          f"({progress.passages} passages){'' if done else '  (stopped by the timeout before the end)'}")
    index = progress.index
    if index:
        print(f"narrative index: {index.get('narratives')} narratives, {index.get('rows')} rows, "
              f"{int(index.get('bytes', 0)) / 2**20:.1f} MB of vectors, loaded in {index.get('seconds')} s")
    for when, rss in samples[:: max(1, len(samples) // 12)]:
        print(f"  t={when:6.1f} s  RSS {rss / 1024:7.1f} MB")
    verdict = "PASS" if peak <= TARGET_BYTES and done else "MISS"
    print(f"peak RSS {peak / 2**20:.0f} MB (VmHWM {hwm_kb / 1024:.0f} MB, "
          f"ru_maxrss {maxrss_kb / 1024:.0f} MB)  target <= {TARGET_BYTES / 2**30:.1f} GB  {verdict}")
    for error in progress.errors[:5]:
        print(f"  logged error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=1, help="articles per feed")
    parser.add_argument("--profile", default="summary", choices=["summary", "full"],
                        help="summary: 30-120 words an item; full: whole articles (slow to embed)")
    parser.add_argument("--narratives", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1, help="vectors per narrative (title + examples)")
    parser.add_argument("--history", type=int, default=2000,
                        help="passage vectors of earlier articles in the database (0: none)")
    parser.add_argument("--no-multilingual", action="store_true",
                        help='measure [matching] multilingual_model = "" (the model alone)')
    parser.add_argument("--backend", default=BACKEND[0], choices=BACKENDS, help="[matching] backend")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/narrative-monitor-bench-memory"))
    parser.add_argument("--timeout", type=float, default=1200, help="seconds before the run is stopped")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"memory benchmark: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.feeds} feeds x {args.items} {args.profile} item(s), "
          f"{args.narratives:,} narratives x {args.rows} row(s); backend {args.backend}"
          f"{'' if args.no_multilingual else ' + multilingual'}")
    if args.no_multilingual:
        MULTILINGUAL[0] = ""
    BACKEND[0], MODELS[0] = args.backend, args.workdir / "data" / "models"
    export_model()
    database = args.workdir / f"monitor-{args.narratives}x{args.rows}-{default_dimension()}.db"
    if database.exists():
        _reset_articles(database)
    url = build_database(database, args.narratives, args.rows, default_dimension())
    if args.history:
        add_history(url, args.history, default_dimension())
    with FeedFarm(args.feeds, args.items, args.profile, hosts=args.feeds) as farm:
        config = write_config(args.workdir, farm.urls)
        run_monitor(args, config, url)
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _reset_articles(database: Path) -> None:
    """Forget the feeds and articles of an earlier run, so this one polls and matches them anew."""
    with sqlite3.connect(database, timeout=30) as connection:
        for table in ("alerts", "matches", "article_passages", "article_sources", "articles", "feeds"):
            connection.execute(f"DELETE FROM {table}")  # fixed names, not input


if __name__ == "__main__":
    main()
