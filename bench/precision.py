"""Alert precision on a realistic stream: fact-checked claims against real news that repeats none.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/precision.py [--model NAME] [--no-cache]

Narratives: the 10,373 CheckThat! 2020 verified claims. Positives: the dev and train tweets,
each expected to alert on its gold claim. Negatives: every entry of the real news feeds under
../shared/data/feeds/feeder-captures and miniflux-testdata, parsed as the pipeline parses
them. The same is done with the EUvsDisinfo 2015-2016 titles as narratives (positives: case
summaries that differ from their title). Everything is scored by `monitor.matching.scoring.Scorer`,
the pipeline's own path, once with the cosine alone and once with the shipped lexical fusion.

Printed, per scorer: the curve (recall vs. negative alert rate), the figures at the shipped
thresholds, and the best operating points. Precision assumes a stream where `--prevalence`
of the items repeat a narrative; an alert is false on a negative, and on a positive that
alerts without its gold narrative. Vectors are cached under bench/.cache (keyed by model and
texts), so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from precision_data import CachedEmbedder, load_negatives

from monitor.config import MatchingSection
from monitor.matching.embedders import DEFAULT_MODEL
from monitor.matching.evaluation import build_scorer, load_checkthat
from monitor.matching.index import Thresholds
from monitor.matching.narrative_files import narrative_id
from monitor.matching.scoring import DEFAULT_FUSION, PLAIN, Fusion, Scorer
from monitor.matching.stage import make_embedder
from monitor.types import Narrative

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULTS = MatchingSection()
FLOOR = 0.30  # the lowest score the curve looks at
CURVE = [round(0.40 + 0.02 * i, 2) for i in range(21)]  # 0.40 .. 0.80


@dataclass(frozen=True)
class Stream:
    """Narratives, positive texts with their gold narrative ids, and negative texts."""

    name: str
    narratives: tuple[Narrative, ...]
    positives: tuple[tuple[str, frozenset[str]], ...]
    negatives: tuple[tuple[str, str], ...]  # (title, text)


@dataclass(frozen=True)
class Scored:
    """Per item, every narrative reaching FLOOR with a tier-eligible score: {narrative id: score}."""

    positives: list[dict[str, float]]
    gold: list[frozenset[str]]
    negatives: list[dict[str, float]]


@dataclass(frozen=True)
class Point:
    threshold: float
    recall: float  # positives alerting on a gold narrative
    wrong: float  # positives alerting, but never on a gold narrative
    negative_rate: float  # negatives alerting on anything
    precision: float  # at the given prevalence


def main() -> None:
    args = _arguments()
    embedder = CachedEmbedder(make_embedder(args.model, None, None), args.cache)
    negatives = load_negatives(SHARED / "feeds")
    print(f"model {embedder.model_id}; {len(negatives):,} negative news entries from "
          f"{SHARED / 'feeds'} (feeder-captures, miniflux-testdata); prevalence {args.prevalence:.0%}")
    for stream in (_checkthat(negatives), _euvsdisinfo(negatives)):
        print(f"\n######## {stream.name}: {len(stream.narratives):,} narratives, "
              f"{len(stream.positives):,} positives, {len(stream.negatives):,} negatives")
        shipped = f"shipped: {_describe(DEFAULT_FUSION)}"
        for label, fusion in (("cosine alone", PLAIN), (shipped, DEFAULT_FUSION)):
            started = time.perf_counter()
            scored = _score(stream, embedder, fusion)
            print(f"\n== {label}  (scored in {time.perf_counter() - started:.0f} s)")
            _report(scored, args.prevalence)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prevalence", type=float, default=0.02, help="share of positives in the stream")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--no-cache", dest="cache", action="store_const", const=None)
    return parser.parse_args()


def _describe(fusion: Fusion) -> str:
    return f"cosine + {fusion.weight} x coverage, coverage >= {fusion.floor}"


def _checkthat(negatives: Sequence[tuple[str, str]]) -> Stream:
    root = SHARED / "checkthat2020"
    splits = [load_checkthat(root, split) for split in ("dev", "train")]
    positives = tuple(
        (text, s.qrels[query]) for s in splits for query, text in s.queries if s.qrels.get(query)
    )
    return Stream("CheckThat! 2020 claims", splits[0].narratives, positives, tuple(negatives))


def _euvsdisinfo(negatives: Sequence[tuple[str, str]]) -> Stream:
    with (SHARED / "euvsdisinfo" / "cases-2015-2016.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    cases = [(" ".join(row["title"].split()), " ".join(row["summary"].split())) for row in rows]
    titles = {narrative_id(title): title for title, _ in cases if title}
    narratives = tuple(Narrative(id=key, title=title) for key, title in titles.items())
    positives = {summary: frozenset({narrative_id(title)}) for title, summary in cases
                 if title and summary and summary != title}
    return Stream("EUvsDisinfo 2015-2016 titles", narratives, tuple(positives.items()), tuple(negatives))


def _score(stream: Stream, embedder: CachedEmbedder, fusion: Fusion) -> Scored:
    # Thresholds at the floor: every narrative that could alert at any point of the curve is kept.
    scorer = build_scorer(embedder, stream.narratives, Thresholds(FLOOR, FLOOR), DEFAULTS.max_passages,
                          DEFAULTS.passage_tokens, fusion)
    positives = _raised(scorer, [("", text) for text, _ in stream.positives])
    negatives = _raised(scorer, list(stream.negatives))
    return Scored(positives, [gold for _, gold in stream.positives], negatives)


def _raised(scorer: Scorer, items: list[tuple[str, str]]) -> list[dict[str, float]]:
    embedded = scorer.embed_texts(items)
    found = scorer.matches_each(embedded, evidence=False)
    return [{s.narrative_id: s.score for s in scores} for scores in found]


def _point(scored: Scored, threshold: float, prevalence: float) -> Point:
    def alerting(item: dict[str, float]) -> set[str]:
        return {narrative for narrative, score in item.items() if score >= threshold}

    negative_rate = float(np.mean([bool(alerting(item)) for item in scored.negatives]))
    if not scored.positives:
        return Point(threshold, float("nan"), float("nan"), negative_rate, float("nan"))

    hits = [bool(alerting(item) & gold) for item, gold in zip(scored.positives, scored.gold, strict=True)]
    strays = [not hit and bool(alerting(item)) for item, hit in zip(scored.positives, hits, strict=True)]
    recall, wrong = float(np.mean(hits)), float(np.mean(strays))
    false = prevalence * wrong + (1 - prevalence) * negative_rate
    precision = prevalence * recall / (prevalence * recall + false) if recall else 0.0
    return Point(threshold, recall, wrong, negative_rate, precision)


def _report(scored: Scored, prevalence: float) -> None:
    if not scored.positives:
        print("(no positives: every summary in this file repeats its title; negative alert rate only)")
    print("threshold  recall  wrong-alert  negative-alert-rate  precision")
    for threshold in CURVE:
        _print_point(_point(scored, threshold, prevalence))
    print(f"at the shipped thresholds (alert {DEFAULTS.alert_threshold}, watch {DEFAULTS.watch_threshold}):")
    for name, threshold in (("alert", DEFAULTS.alert_threshold), ("watch", DEFAULTS.watch_threshold)):
        print(f"  {name:5s}", end=" ")
        _print_point(_point(scored, threshold, prevalence))
    if not scored.positives:
        return
    fine = [_point(scored, t / 1000, prevalence) for t in range(int(FLOOR * 1000), 1000, 5)]
    best_at_recall = max((p for p in fine if p.recall >= 0.8), key=lambda p: p.precision, default=None)
    best_at_precision = max((p for p in fine if p.precision >= 0.9), key=lambda p: p.recall, default=None)
    print(f"  best precision with recall >= 0.8: {_short(best_at_recall)}")
    print(f"  best recall with precision >= 0.9: {_short(best_at_precision)}")
    target = best_at_precision is not None and best_at_precision.recall >= 0.8
    print(f"  target precision >= 0.9 with recall >= 0.8: {'PASS' if target else 'MISS'}")


def _print_point(p: Point) -> None:
    print(f"  {p.threshold:5.3f}   {p.recall:6.3f}  {p.wrong:10.3f}  "
          f"{p.negative_rate:19.4f}  {p.precision:9.3f}")


def _short(p: Point | None) -> str:
    if p is None:
        return "none"
    return (f"threshold {p.threshold:.3f}: recall {p.recall:.3f}, negative alert rate "
            f"{p.negative_rate:.4f}, precision {p.precision:.3f}")


if __name__ == "__main__":
    main()
