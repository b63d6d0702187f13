"""Recall at precision 0.9 per article language, for bench/crosslingual.py.

Positives: retellings in one language of the English narratives; an alert on the retelling's
own narrative is a hit, an alert only on another narrative is false. Negatives: the real news
of one half, every language together (per language there are too few: 50 Russian and 19
Ukrainian entries held out). One threshold on the score scale, which both routes share: chosen
on the `train` narratives and news half A, reported on the `dev` narratives and news half B.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Found = dict[str, tuple[float, str]]  # narrative id -> (score, route)
GRID = [round(0.40 + 0.01 * i, 2) for i in range(61)]  # 0.40 .. 1.00


def report(items: Sequence[Any], found: Sequence[Found], news_found: Sequence[Found],
           halves: tuple[list[int], list[int]], languages: Sequence[str], prevalence: float = 0.02) -> None:
    """Print, per article language, the threshold of best recall at precision >= 0.9 (train/A) on dev/B."""
    print(f"\n== recall at precision >= 0.9 ({prevalence:.0%} prevalence) per article language, English "
          "narratives; threshold chosen on train + news A, reported on dev + news B")
    print("  language  threshold  train: recall precision | dev: recall wrong news-rate precision"
          " | dev-optimal threshold, recall")
    for language in languages:
        parts = [_part(items, found, news_found, half, split, language)
                 for split, half in (("train", halves[0]), ("dev", halves[1]))]
        chosen = _best(parts[0], prevalence)
        own = _best(parts[1], prevalence)
        if chosen is None:
            print(f"  {language:8s}  none reaches 0.9 on train/A")
            continue
        r, w, n, p = _point(parts[1], chosen[0], prevalence)
        reference = f"{own[0]:.2f}, {own[1]:.2f}" if own else "none"
        print(f"  {language:8s}  {chosen[0]:.2f}       {chosen[1]:.2f}  {chosen[4]:.3f}     |"
              f"  {r:.2f}  {w:.2f}  {n:.4f}  {p:.3f} | {reference}")


def _part(items: Sequence[Any], found: Sequence[Found], news_found: Sequence[Found], half: list[int],
          split: str, language: str) -> tuple[list[tuple[str, Found]], list[Found]]:
    positives = [(item.narrative, f) for item, f in zip(items, found, strict=True)
                 if item.kind == "retelling" and item.split == split and item.narrative_language == "en"
                 and item.language == language]
    return positives, [news_found[i] for i in half]


def _point(part: tuple[list[tuple[str, Found]], list[Found]], threshold: float,
           prevalence: float) -> tuple[float, float, float, float]:
    positives, negatives = part

    def alerting(f: Found) -> set[str]:
        return {n for n, (score, _route) in f.items() if score >= threshold - 1e-9}

    hits = [own in alerting(f) for own, f in positives]
    wrong = [not hit and bool(alerting(f)) for hit, (_own, f) in zip(hits, positives, strict=True)]
    recall, stray = float(np.mean(hits)), float(np.mean(wrong))
    rate = float(np.mean([bool(alerting(f)) for f in negatives]))
    false = prevalence * stray + (1 - prevalence) * rate
    precision = prevalence * recall / (prevalence * recall + false) if recall else 0.0
    return recall, stray, rate, precision


def _best(part: tuple[list[tuple[str, Found]], list[Found]],
          prevalence: float) -> tuple[float, float, float, float, float] | None:
    points = [(t, *_point(part, t, prevalence)) for t in GRID]
    good = [p for p in points if p[4] >= 0.9]
    return max(good, key=lambda p: (p[1], -p[0])) if good else None
