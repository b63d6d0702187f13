"""Polling benchmark (issue #6, 2): 2,000 feeds on loopback, rounds of 304 and of unchanged 200s.

    .venv/bin/python bench/polling.py [--feeds 2000] [--rounds 3] [--naive-feeds 300]

Serves generated feeds (bench/feedserve.py, a separate process, one port per feed by default:
a port is a host to the politeness rules) and polls them with the project's own path,
`Pipeline.poll_many` as `monitor poll --once` calls it, with the default settings, into a
fresh SQLite file. Round 0 stores every article; then rounds where every answer is 304, then
rounds of 200 with no new items (a server ignoring validators). Prints feeds/s, the client's
CPU seconds per feed (getrusage, the server excluded), peak RSS, and a naive sequential loop
(`feedparser.parse(url)` per feed) as the baseline, then PASS/MISS per target.

The naive loop runs right before each round it is compared with, and each ratio is of such a
pair: on a machine whose load changes by the minute, a baseline measured minutes apart moved
the ratio by 2x (6.3 against 11.4 ms a naive feed in two runs of the same code).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import feedparser
from feedserve import FeedFarm

from monitor.config import Settings, load_settings
from monitor.ingest.fetch import Fetcher
from monitor.ingest.poller import Pipeline
from monitor.service.logs import setup_logging
from storage.db import open_engine, upgrade
from storage.repo import Repository

ROUND_304_SECONDS = 10.0  # target: a 304 round of 2,000 feeds under 10 s
NAIVE_FACTOR = 10.0  # target: at least 10x the naive loop's feeds/s


@dataclass(frozen=True)
class Round:
    name: str
    feeds: int
    seconds: float
    cpu: float  # the client's user + system seconds
    server_cpu: float
    statuses: Counter[int | None]
    new: int

    @property
    def rate(self) -> float:
        return self.feeds / self.seconds

    def line(self) -> str:
        codes = " ".join(f"{code}x{n}" for code, n in sorted(self.statuses.items(), key=str))
        return (f"  {self.name:<14} {self.seconds:7.2f} s {self.rate:8.0f} feeds/s "
                f"{1000 * self.cpu / self.feeds:7.2f} ms CPU/feed  server {self.server_cpu:5.1f} s CPU  "
                f"[{codes}] new={self.new}")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write_config(folder: Path, urls: list[str]) -> Settings:
    lines = ['[monitor]\ndata_dir = "data"\n']
    lines += [f'[feeds.f{i:05d}]\nurl = "{url}"\n' for i, url in enumerate(urls)]
    path = folder / "feeds.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return load_settings(str(path))


def _round(name: str, pipeline: Pipeline, settings: Settings, farm: FeedFarm) -> Round:
    feeds = settings.feeds()
    server_before, cpu_before, started = farm.stats()["cpu"], _cpu(), time.perf_counter()
    results = pipeline.poll_many(feeds, settings.monitor.max_concurrency)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu_before
    errors = [r.error for r in results if r.error]
    if errors:
        print(f"  {len(errors)} feed(s) failed, e.g. {errors[0]}")
    return Round(name, len(feeds), seconds, cpu, farm.stats()["cpu"] - server_before,
                 Counter(r.http_status for r in results), sum(r.new for r in results))


def _naive(urls: list[str], farm: FeedFarm) -> Round:
    server_before, cpu_before, started = farm.stats()["cpu"], _cpu(), time.perf_counter()
    statuses: Counter[int | None] = Counter()
    entries = 0
    for url in urls:
        parsed = feedparser.parse(url)
        statuses[parsed.get("status")] += 1
        entries += len(parsed.entries)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu_before
    server_cpu = farm.stats()["cpu"] - server_before
    return Round("naive loop", len(urls), seconds, cpu, server_cpu, statuses, entries)


def _report(rounds: list[Round], naive: list[Round], peak_rss_mb: float) -> None:
    """`naive[i]` ran right before `rounds[i]`; each ratio is of one such pair."""
    pairs = list(zip(rounds, naive, strict=True))
    not_modified = [(r, n) for r, n in pairs if r.name.startswith("304")]
    unchanged = [(r, n) for r, n in pairs if r.name.startswith("200")]
    median_304 = statistics.median(r.seconds for r, _ in not_modified)
    ratio_304 = statistics.median(r.rate / n.rate for r, n in not_modified)
    ratio_200 = statistics.median(r.rate / n.rate for r, n in unchanged)
    cpu_304 = statistics.median((n.cpu / n.feeds) / (r.cpu / r.feeds) for r, n in not_modified)
    scale = 2000 / not_modified[0][0].feeds  # the target is stated for 2,000 feeds
    print(f"\npeak RSS of the client: {peak_rss_mb:.0f} MB")
    print("naive loop before each round: " + ", ".join(f"{1000 / n.rate:.1f}" for n in naive) + " ms a feed")
    print(f"304 rounds: median {median_304:.2f} s for {not_modified[0][0].feeds} feeds; against the naive "
          "loop just before: " + ", ".join(f"{r.rate / n.rate:.1f}x" for r, n in not_modified)
          + f" (median {ratio_304:.1f}x; in CPU per feed {cpu_304:.1f}x)")
    print("200 rounds (no new items) against the naive loop just before: "
          + ", ".join(f"{r.rate / n.rate:.1f}x" for r, n in unchanged))
    print("\ntargets:")
    _target(f"304 round of 2,000 feeds < {ROUND_304_SECONDS:g} s", median_304 * scale, ROUND_304_SECONDS,
            "s", lower=True)
    _target(f"304 rounds >= {NAIVE_FACTOR:g}x naive", ratio_304, NAIVE_FACTOR, "x")
    _target(f"200 rounds >= {NAIVE_FACTOR:g}x naive (same bar, unchanged bodies)", ratio_200,
            NAIVE_FACTOR, "x")


def _target(label: str, value: float, bar: float, unit: str, lower: bool = False) -> None:
    ok = value < bar if lower else value >= bar
    print(f"  {'PASS' if ok else 'MISS'}  {label}: {value:.2f} {unit}")


def main() -> None:
    args = _arguments()
    print(f"{os.cpu_count()} CPUs; serving {args.feeds} feeds x {args.items} items on "
          f"{args.hosts or args.feeds} loopback ports (separate process)...")
    with FeedFarm(args.feeds, args.items, "summary", args.hosts) as farm, \
            tempfile.TemporaryDirectory() as tmp:
        settings = _write_config(Path(tmp), farm.urls)
        log_file = (Path(tmp) / "monitor.log").open("w", encoding="utf-8")
        setup_logging("info", stream=log_file)  # as the CLI does, to a file rather than the terminal
        engine = open_engine(settings.database_url)
        upgrade(engine)
        repo = Repository(engine)
        repo.sync_feeds(settings.feeds())
        pipeline = Pipeline(repo, Fetcher(settings.fetch_options()), max_backoff=settings.monitor.max_backoff)
        print(f"polling with max_concurrency={settings.monitor.max_concurrency}, "
              f"SQLite {settings.database_url}")
        rounds = [_round("initial (200)", pipeline, settings, farm)]
        print(rounds[0].line())
        naive: list[Round] = []
        for kind, mode in (("304", "conditional"), ("200 unchanged", "ignore")):
            farm.set_mode(mode)
            for n in range(args.rounds):
                # The naive loop sends no validators: 200s with full bodies in either mode.
                naive.append(_naive(farm.urls[: args.naive_feeds], farm))
                print(naive[-1].line())
                rounds.append(_round(f"{kind} #{n + 1}", pipeline, settings, farm))
                print(rounds[-1].line())
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        pipeline.fetcher.close()
        engine.dispose()
        logging.getLogger().handlers.clear()
        log_file.close()
    _report(rounds[1:], naive, peak_rss_mb)


def _arguments() -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items", type=int, default=20, help="items per feed")
    parser.add_argument("--hosts", type=int, default=None, help="distinct host:port (default: one per feed)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    parser.add_argument("--naive-feeds", type=int, default=300, help="feeds the naive loop fetches")
    return parser.parse_args()


if __name__ == "__main__":
    main()
