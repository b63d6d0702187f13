"""Ranking quality and alert thresholds of a model on CheckThat! 2020 Task 2 (verified claims vs tweets).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/eval_thresholds.py [--split dev train] [--model NAME]

Prints MAP@5, MRR, P@1 and Recall@k, the alert figures at the configured thresholds, a sweep
of one global threshold, and the thresholds it recommends. Claims are embedded once for all splits.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from monitor.config import MatchingSection
from monitor.matching.backends import BACKENDS
from monitor.matching.embedders import DEFAULT_MODEL
from monitor.matching.evaluation import (
    EvalResult,
    EvalSet,
    SweepRow,
    build_scorer,
    evaluate,
    load_checkthat,
    sweep,
)
from monitor.matching.index import Thresholds
from monitor.matching.stage import make_embedder

CHECKTHAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "checkthat2020"
RANKING = ("MAP@5", "MRR", "P@1", "Recall@1", "Recall@5", "Recall@10")
DEFAULTS = MatchingSection()  # the configured defaults, as a fresh feeds.toml gets them
SWEEP = [round(0.30 + 0.05 * i, 2) for i in range(13)]  # 0.30 .. 0.90


def main() -> None:
    args = _arguments()
    thresholds = Thresholds(args.alert, args.watch)
    started = time.perf_counter()
    sets = {split: load_checkthat(args.root, split) for split in args.split}
    claims = next(iter(sets.values())).narratives
    print(f"loaded {len(claims):,} claims and splits {', '.join(args.split)} in {_since(started)}")
    started = time.perf_counter()
    embedder = make_embedder(args.model, DEFAULTS.query_prompt, DEFAULTS.passage_prompt, backend=args.backend)
    scorer = build_scorer(embedder, claims, thresholds, args.max_passages, args.passage_tokens)
    texts = sum(1 + len(n.examples) for n in claims)
    print(f"model {embedder.model_id}: {texts:,} claim texts embedded in {_since(started)} (with model load)")
    for split, evalset in sets.items():
        result = evaluate(scorer, evalset, k=args.k, batch=args.batch)
        _report(split, evalset, result, args.alert_recall, args.watch_recall)


def _arguments() -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--root", type=Path, default=CHECKTHAT, help="the checkthat2020 folder")
    parser.add_argument("--split", nargs="+", default=["dev"], choices=["dev", "train"])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend,
                        help="how the model runs (as [matching] backend)")
    parser.add_argument("--alert", type=float, default=DEFAULTS.alert_threshold, help="alert threshold")
    parser.add_argument("--watch", type=float, default=DEFAULTS.watch_threshold, help="watch threshold")
    parser.add_argument("--alert-recall", type=float, default=None,
                        help="recall the alert threshold keeps (default: the threshold of best F1)")
    parser.add_argument("--watch-recall", type=float, default=0.8, help="recall the watch threshold keeps")
    parser.add_argument("--k", type=int, default=10, help="narratives ranked per query")
    parser.add_argument("--batch", type=int, default=64, help="queries embedded together")
    parser.add_argument("--max-passages", type=int, default=DEFAULTS.max_passages)
    parser.add_argument("--passage-tokens", type=int, default=DEFAULTS.passage_tokens)
    return parser.parse_args()


def _report(
    split: str, evalset: EvalSet, result: EvalResult, alert_recall: float | None, watch_recall: float
) -> None:
    m = result.metrics
    pairs = sum(len(ids) for ids in evalset.qrels.values())
    print(f"\n== {split}: {result.queries} queries ({result.positives} with a gold claim, "
          f"{pairs} gold pairs), scored in {result.seconds:.1f} s")
    print("  ".join(f"{name} {m[name]:.3f}" for name in RANKING))
    t = result.thresholds
    print(f"at alert {t.alert:.2f} / watch {t.watch:.2f}: alert recall {m['alert_recall']:.3f}, "
          f"alert precision {m['alert_precision']:.3f} ({m['alert_pairs']:.0f} alerts); alert-or-watch "
          f"recall {m['flag_recall']:.3f}, precision {m['flag_precision']:.3f} ({m['flag_pairs']:.0f} pairs)")
    rows = sweep(result, SWEEP)
    _print_sweep(rows)
    _recommend(split, rows, alert_recall, watch_recall)


def _print_sweep(rows: Sequence[SweepRow]) -> None:
    print("\nthreshold  recall@1  precision@1  recall(any)  precision(pairs)  alerts  stray-rate")
    for r in rows:
        print(f"{r.threshold:9.2f}  {r.recall:8.3f}  {r.precision:11.3f}  {r.pair_recall:11.3f}  "
              f"{r.pair_precision:16.3f}  {r.alerts:6d}  {r.stray_rate:10.3f}")


def _recommend(split: str, rows: Sequence[SweepRow], alert_recall: float | None, watch_recall: float) -> None:
    if alert_recall is None:
        alert, rule = max(rows, key=_f1), "best F1 of recall(any) and precision(pairs)"
    else:
        alert, rule = _highest(rows, alert_recall), f"highest with recall(any) >= {alert_recall:.2f}"
    watch = _highest([r for r in rows if r.threshold < alert.threshold] or [alert], watch_recall)
    print(f"\nbest top-1 recall {max(r.recall for r in rows):.3f}")
    print(f"recommended ({split}): alert {alert.threshold:.2f} ({rule}: recall {alert.pair_recall:.3f}, "
          f"precision {alert.pair_precision:.3f}, top-1 precision {alert.precision:.3f})")
    print(f"recommended ({split}): watch {watch.threshold:.2f} (highest below alert with recall(any) >= "
          f"{watch_recall:.2f}: recall {watch.pair_recall:.3f}, precision {watch.pair_precision:.3f})")


def _highest(rows: Sequence[SweepRow], recall: float) -> SweepRow:
    """The row of the highest threshold whose recall(any) is at least `recall`, else the lowest row."""
    kept = [r for r in rows if r.pair_recall >= recall]
    return max(kept, key=lambda r: r.threshold) if kept else min(rows, key=lambda r: r.threshold)


def _f1(row: SweepRow) -> float:
    total = row.pair_recall + row.pair_precision
    return 2 * row.pair_recall * row.pair_precision / total if total else 0.0


def _since(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"


if __name__ == "__main__":
    main()
