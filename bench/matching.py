"""Benchmark 3 of issue #6: scoring one article's passages against 1k, 10k and 100k narratives.

    .venv/bin/python bench/matching.py [--sizes 1000,10000,100000] [--passages 1,8,32] [--legacy]

Random unit vectors stand in for embeddings (the model is not involved in scoring). For each
index size and rows per narrative (1, and 3 as title + two examples give), it times
`NarrativeIndex.above(passages, floor)` once per article, as `Scorer.matches` calls it, and
`above_each` over a batch of articles (one pass over the index for the whole batch), and
measures the index's memory against the raw vectors. `--legacy` also times the previous
algorithm (full similarity, argmax over all of it) in the same run, for a before/after.
Targets at 100k narratives: <= 2 ms per passage, index memory <= 2x the raw vectors.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from monitor.matching.index import NarrativeIndex

TARGET_MS_PER_PASSAGE = 2.0
TARGET_MEMORY_RATIO = 2.0
TARGET_NARRATIVES = 100_000
Matrix = NDArray[np.float32]
Item = TypeVar("Item")


def unit_vectors(rng: np.random.Generator, rows: int, dimension: int) -> Matrix:
    matrix = rng.standard_normal((rows, dimension), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def build(narratives: int, per: int, dimension: int, rng: np.random.Generator) -> tuple[NarrativeIndex, str]:
    """The index over random vectors, and a line on its memory against the raw vectors."""
    ids = [f"narrative-{i:06d}" for i in range(narratives) for _ in range(per)]
    matrix = unit_vectors(rng, len(ids), dimension)
    tracemalloc.start()
    started = time.perf_counter()
    index = NarrativeIndex.from_arrays(ids, matrix)
    seconds = time.perf_counter() - started
    side, peak = tracemalloc.get_traced_memory()  # what the index allocated besides `matrix`
    tracemalloc.stop()
    copied = not np.shares_memory(index.vectors(index.ids[0]), matrix)
    held = side + (0 if copied else matrix.nbytes)  # a copy is already counted in `side`
    ratio = held / matrix.nbytes
    verdict = _verdict(ratio <= TARGET_MEMORY_RATIO) if narratives >= TARGET_NARRATIVES else ""
    line = (f"  index memory: raw {_mb(matrix.nbytes)}, held {_mb(held)} ({ratio:.3f}x; side arrays "
            f"{_mb(side)}, build peak {_mb(peak)} over the matrix, matrix copied: {copied}), "
            f"built in {seconds * 1e3:.0f} ms  target <= {TARGET_MEMORY_RATIO:.0f}x {verdict}")
    return index, line


def legacy_above(index: NarrativeIndex, passages: Matrix, floor: float) -> list[tuple[str, float, int]]:
    """The algorithm before this change, for comparison: argmax and fancy indexing over everything."""
    matrix, starts = index._matrix.astype(np.float32), index._starts  # the benchmark looks inside
    similarity = passages @ matrix.T
    row_score = similarity.max(axis=0)
    if len(starts) == len(matrix):
        scores, where = row_score, similarity.argmax(axis=0)
    else:
        scores = np.maximum.reduceat(row_score, starts)
        reached = row_score == np.repeat(scores, np.diff(starts, append=len(matrix)))
        best_row = np.minimum.reduceat(np.where(reached, np.arange(len(matrix)), len(matrix)), starts)
        where = similarity[:, best_row].argmax(axis=0)
    chosen = np.flatnonzero(scores >= floor)
    chosen = chosen[np.lexsort((chosen, -scores[chosen]))]
    return [(index.ids[i], float(scores[i]), int(where[i])) for i in chosen.tolist()]


def time_calls(call: Callable[[Item], object], inputs: Sequence[Item]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per call (CPU counts every BLAS thread), after one warm-up call."""
    call(inputs[0])
    wall, cpu = [], []
    for item in inputs:
        started, cpu_started = time.perf_counter(), time.process_time()
        call(item)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return wall, cpu


def per_article(
    name: str, call: Callable[[Matrix], object], articles: Sequence[Matrix], passages: int, gate: bool
) -> None:
    wall, cpu = time_calls(call, articles)
    wall.sort()
    p50, p99 = statistics.median(wall), wall[min(len(wall) - 1, int(0.99 * len(wall)))]
    per_passage = p50 * 1e3 / passages
    verdict = _verdict(per_passage <= TARGET_MS_PER_PASSAGE) if gate else ""
    print(f"  {name:<7}{passages:>3} passages x {len(wall)} articles: p50 {p50 * 1e3:7.1f} ms  "
          f"p99 {p99 * 1e3:7.1f} ms  (CPU p50 {statistics.median(cpu) * 1e3:7.1f} ms)  "
          f"= {per_passage:6.2f} ms/passage  {verdict}")


def batched(index: NarrativeIndex, articles: Sequence[Matrix], batch: int, passages: int, floor: float,
            gate: bool) -> None:
    """above_each over `batch` articles at a time: one pass over the index per batch."""
    groups = [list(articles[i : i + batch]) for i in range(0, len(articles) - batch + 1, batch)]
    wall, cpu = time_calls(lambda group: index.above_each(group, floor), groups)
    per_passage = statistics.median(wall) * 1e3 / (batch * passages)
    verdict = _verdict(per_passage <= TARGET_MS_PER_PASSAGE) if gate else ""
    print(f"  {'batch':<7}{passages:>3} passages x {batch} articles per call, {len(wall)} calls: median "
          f"{statistics.median(wall) * 1e3:7.1f} ms  (CPU {statistics.median(cpu) * 1e3:7.1f} ms)  "
          f"= {per_passage:6.2f} ms/passage  {verdict}")


def run_case(args: argparse.Namespace, narratives: int, per: int, rng: np.random.Generator) -> None:
    print(f"\n{narratives:,} narratives x {per} row(s) = {narratives * per:,} rows of {args.dimension}")
    index, memory = build(narratives, per, args.dimension, rng)
    print(memory)
    gate = narratives >= TARGET_NARRATIVES
    count = args.articles if narratives * per <= 20_000 else max(args.articles // 4, 20)
    for passages in args.passages:
        articles = [unit_vectors(rng, passages, args.dimension) for _ in range(count)]
        per_article("above", lambda q: index.above(q, args.floor), articles, passages, gate)
        if args.legacy:
            per_article("legacy", lambda q: legacy_above(index, q, args.floor), articles, passages, gate)
        calls = args.batches if narratives * per > 20_000 else 5 * args.batches
        many = [unit_vectors(rng, passages, args.dimension) for _ in range(args.batch * calls)]
        batched(index, many, args.batch, passages, args.floor, gate)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _mb(size: float) -> str:
    return f"{size / 2**20:.1f} MB"


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[1_000, 10_000, 100_000])
    parser.add_argument("--rows", type=_ints, default=[1, 3], help="rows per narrative")
    parser.add_argument("--passages", type=_ints, default=[1, 8, 32], help="passages per article")
    parser.add_argument("--articles", type=int, default=200, help="articles timed one by one")
    parser.add_argument("--batch", type=int, default=64, help="articles per above_each call")
    parser.add_argument("--batches", type=int, default=2, help="above_each calls timed")
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--floor", type=float, default=0.5, help="the watch threshold")
    parser.add_argument("--legacy", action="store_true", help="also time the previous algorithm")
    parser.add_argument("--blas-threads", type=int, default=0, help="BLAS threads (0: the default)")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    print(f"matching benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"targets at {TARGET_NARRATIVES:,} narratives: <= {TARGET_MS_PER_PASSAGE} ms per passage, "
          f"index memory <= {TARGET_MEMORY_RATIO:.0f}x the raw vectors")
    rng = np.random.default_rng(args.seed)
    with _blas_threads(args.blas_threads):
        for narratives in args.sizes:
            for per in args.rows:
                run_case(args, narratives, per, rng)


def _blas_threads(threads: int) -> AbstractContextManager[object]:
    """Limit BLAS to `threads` (0: leave it); threadpoolctl comes with sentence-transformers."""
    if threads <= 0:
        return nullcontext()
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    print(f"BLAS limited to {threads} thread(s)")
    limits: AbstractContextManager[object] = threadpool_limits(limits=threads, user_api="blas")
    return limits


if __name__ == "__main__":
    main()
