"""Alert precision on a realistic stream, chosen on one part of the data and reported on another.

    HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/precision.py [--no-multilingual]

Narratives: the 10,373 CheckThat! 2020 verified claims. Positives: tweets, each expected to
alert on its gold claim. Negatives: every entry of the real news feeds under
../shared/data/feeds/feeder-captures and miniflux-testdata, parsed as the pipeline parses them.

The split, printed with the figures: thresholds are CHOSEN on the train tweets and news half A,
and REPORTED on the dev tweets and news half B (halves by feed file, precision_data.load_news);
half A also calibrates the multilingual route, as stored passages do in the pipeline.
Everything is scored by `monitor.matching.scoring.Scorer`, the pipeline's own path, at the
shipped fusion, once with MiniLM alone and once with the default MiniLM + multilingual USE
(`--no-multilingual`: MiniLM alone only; `--multilingual-only`: the pair only).

Printed, per embedder: the figures at the shipped thresholds; the threshold of best recall at
precision >= 0.9 and of best precision at recall >= 0.8, chosen on train/A and measured on
dev/B; the dev/B curve; and MAP@5 of `scorer.top` on the dev tweets. Precision assumes a stream
where `--prevalence` of the items repeat a narrative; an alert is false on a negative, and on a
positive that alerts without its gold narrative. Vectors are cached per model under bench/.cache
(keyed by model, kind and the batch's texts), so a second run takes minutes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from precision_data import CHOOSE, REPORT, News, background_sample, cached_embedders, load_news

from monitor.config import MatchingSection
from monitor.matching.backends import BACKENDS
from monitor.matching.embedders import DEFAULT_MODEL, Embedder
from monitor.matching.evaluation import build_scorer, load_checkthat, ranking_metrics
from monitor.matching.index import Thresholds
from monitor.matching.multilingual import DualEmbedder
from monitor.matching.scoring import DEFAULT_FUSION, EmbeddedText, Scorer
from monitor.types import Narrative

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULTS = MatchingSection()
FLOOR = 0.30  # the lowest score the curve looks at
CURVE = [round(0.50 + 0.02 * i, 2) for i in range(16)]  # 0.50 .. 0.80


@dataclass(frozen=True)
class Claims:
    """The claims, and the tweets of both splits with their gold claim ids (dev first, then train)."""

    narratives: tuple[Narrative, ...]
    tweets: tuple[tuple[str, frozenset[str]], ...]
    splits: tuple[str, ...]  # "dev" or "train", per tweet


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
    primary, dual = cached_embedders(args.model, args.cache, args.backend)
    news = load_news(SHARED / "feeds")
    claims = _checkthat()
    print(f"{len(claims.narratives):,} CheckThat! 2020 claims; prevalence {args.prevalence:.0%}")
    print(f"CHOOSE on: {claims.splits.count('train'):,} train tweets + news half A "
          f"({len(news.half(CHOOSE))} entries); REPORT on: {claims.splits.count('dev'):,} dev tweets "
          f"+ news half B ({len(news.half(REPORT))} entries)")
    for half in (CHOOSE, REPORT):
        print(f"  half {half}: {', '.join(Path(f).name for f, h in news.files.items() if h == half)}")
    embedders: list[tuple[str, Embedder]] = []
    if not args.multilingual_only:
        embedders.append(("MiniLM alone", primary))
    if not args.no_multilingual:
        embedders.append(("MiniLM + USE, multilingual route (default)", dual))
    for label, embedder in embedders:  # MiniLM first: the pair reuses its vectors of English passages
        started = time.perf_counter()
        scorer, tweets, scored = _score(claims, news, embedder)
        print(f"\n######## {label}: {embedder.model_id}, shipped fusion (scored in "
              f"{time.perf_counter() - started:.0f} s)")
        _report(_part(claims, news, scored, "train", CHOOSE), _part(claims, news, scored, "dev", REPORT),
                args.prevalence)
        _ranking(claims, scorer, tweets)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend,
                        help="how the model runs (as [matching] backend)")
    parser.add_argument("--no-multilingual", action="store_true", help="MiniLM alone, without the pair")
    parser.add_argument("--multilingual-only", action="store_true", help="the pair only (the default)")
    parser.add_argument("--prevalence", type=float, default=0.02, help="share of positives in the stream")
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / ".cache")
    parser.add_argument("--no-cache", dest="cache", action="store_const", const=None)
    return parser.parse_args()


def _checkthat() -> Claims:
    root = SHARED / "checkthat2020"
    splits = {split: load_checkthat(root, split) for split in ("dev", "train")}
    rows = [(text, s.qrels[query], name) for name, s in splits.items() for query, text in s.queries
            if s.qrels.get(query)]
    return Claims(splits["dev"].narratives, tuple((t, g) for t, g, _ in rows), tuple(n for _, _, n in rows))


def _score(claims: Claims, news: News, embedder: Embedder) -> tuple[Scorer, list[EmbeddedText], Scored]:
    # Thresholds at the floor: every narrative that could alert at any point of the curve is kept.
    floor = Thresholds(FLOOR, FLOOR)
    scorer = build_scorer(embedder, claims.narratives, floor, DEFAULTS.max_passages, DEFAULTS.passage_tokens,
                          DEFAULT_FUSION)
    # Whole batches (all news, all tweets) as earlier runs embedded them: their cache keys match.
    negatives = scorer.embed_texts(news.entries)
    if isinstance(embedder, DualEmbedder):
        background = background_sample([negatives[i] for i in news.half(CHOOSE)])
        scorer = build_scorer(embedder, claims.narratives, floor, DEFAULTS.max_passages,
                              DEFAULTS.passage_tokens, DEFAULT_FUSION, *background)
    positives = scorer.embed_texts([("", text) for text, _ in claims.tweets])
    gold = [gold for _, gold in claims.tweets]
    scored = Scored(_raised(scorer, positives), gold, _raised(scorer, negatives))
    return scorer, positives, scored


def _raised(scorer: Scorer, embedded: list[EmbeddedText]) -> list[dict[str, float]]:
    found = scorer.matches_each(embedded, evidence=False)
    return [{s.narrative_id: s.score for s in scores} for scores in found]


def _part(claims: Claims, news: News, scored: Scored, split: str, half: str) -> Scored:
    """The tweets of one split and the news of one half."""
    keep = [i for i, name in enumerate(claims.splits) if name == split]
    return Scored([scored.positives[i] for i in keep], [scored.gold[i] for i in keep],
                  [scored.negatives[i] for i in news.half(half)])


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


def _report(choose: Scored, report: Scored, prevalence: float) -> None:
    print("at the shipped thresholds:   threshold  recall  wrong-alert  negative-alert-rate  precision")
    for name, threshold in (("alert", DEFAULTS.alert_threshold), ("watch", DEFAULTS.watch_threshold)):
        for part, scored in (("train/A", choose), ("dev/B  ", report)):
            print(f"  {name:5s} {part}", end=" ")
            _print_point(_point(scored, threshold, prevalence))
    fine = [t / 1000 for t in range(int(FLOOR * 1000), 1000, 5)]
    chosen = [_point(choose, t, prevalence) for t in fine]
    at_precision = max((p for p in chosen if p.precision >= 0.9), key=lambda p: p.recall, default=None)
    at_recall = max((p for p in chosen if p.recall >= 0.8), key=lambda p: p.precision, default=None)
    print("chosen on train/A, measured on dev/B:")
    for name, point in (("best recall with precision >= 0.9", at_precision),
                        ("best precision with recall >= 0.8", at_recall)):
        print(f"  {name} on train/A: {_short(point)}")
        if point is not None:
            print(f"    the same threshold on dev/B:   {_short(_point(report, point.threshold, prevalence))}")
    held = [_point(report, t, prevalence) for t in fine]
    best = max((p for p in held if p.precision >= 0.9), key=lambda p: p.recall, default=None)
    print(f"  for reference, chosen on dev/B itself (optimistic): recall at precision >= 0.9: {_short(best)}")
    print("dev/B curve: threshold  recall  wrong-alert  negative-alert-rate  precision")
    for threshold in CURVE:
        _print_point(_point(report, threshold, prevalence))


def _ranking(claims: Claims, scorer: Scorer, tweets: Sequence[EmbeddedText]) -> None:
    dev = [i for i, name in enumerate(claims.splits) if name == "dev"]
    rankings = {str(i): [s.narrative_id for s in scorer.top(tweets[i], 5, evidence=False)] for i in dev}
    metrics = ranking_metrics(rankings, {str(i): claims.tweets[i][1] for i in dev})
    print(f"ranking of the {len(dev)} dev tweets (scorer.top, k=5): MAP@5 {metrics['MAP@5']:.3f}, "
          f"MRR {metrics['MRR']:.3f}, P@1 {metrics['P@1']:.3f}, Recall@5 {metrics['Recall@5']:.3f}")


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
