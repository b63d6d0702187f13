"""Thresholds proposed from analysts' labels, with precision and recall before and after.

The labels only cover articles that alerted, so they say which alerts were right, not what
was missed: recall here is the share of confirmed alerts a threshold keeps, and precision
the share of kept alerts that were confirmed. A narrative's own threshold is proposed only
from at least `min_labels` of its labels; the global one from the labels (again at least
`min_labels`) of every narrative that will use it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from monitor.types import LabelledScore

DEFAULT_MIN_LABELS = 10
DEFAULT_TARGET = 0.9  # the precision the issue asks alerts to reach
GLOBAL = "*"  # the scope name of the global threshold


@dataclass(frozen=True)
class Figures:
    """How a threshold does on a set of labels."""

    threshold: float
    kept: int  # labelled alerts at or above it
    precision: float | None  # confirmed among kept (None when nothing is kept)
    recall: float | None  # confirmed kept among confirmed (None without confirmations)


@dataclass(frozen=True)
class Proposal:
    """One threshold (a narrative's own, or the global one): its labels, before and after."""

    scope: str  # narrative id, or GLOBAL
    confirmed: int
    false_alarms: int
    before: Figures
    after: Figures
    enough: bool = True  # False: fewer labels than the minimum, so the threshold stays

    @property
    def changed(self) -> bool:
        return self.after.threshold != self.before.threshold


@dataclass(frozen=True)
class Calibration:
    """Proposals for the global threshold and for each narrative with enough labels, and the
    whole channel's figures before and after (every label under its narrative's threshold)."""

    global_: Proposal | None  # None when no label falls under the global threshold
    narratives: tuple[Proposal, ...]
    total_before: Figures
    total_after: Figures


def figures(points: Sequence[LabelledScore], threshold: float) -> Figures:
    """Precision and recall of alerting at `threshold`, on these labels."""
    kept = [p for p in points if p.score >= threshold]
    confirmed = sum(1 for p in points if p.confirmed)
    hits = sum(1 for p in kept if p.confirmed)
    return Figures(threshold, len(kept), hits / len(kept) if kept else None,
                   hits / confirmed if confirmed else None)


def propose(points: Sequence[LabelledScore], current: float, target: float = DEFAULT_TARGET) -> float:
    """The lowest threshold whose precision on the labels reaches `target`; failing that, the one
    with the best F1; with no confirmation at all, just above the highest false alarm."""
    if not points:
        return current
    highest = max(p.score for p in points)
    candidates = sorted({current, *(_floor(p.score) for p in points)})
    for threshold in candidates:
        found = figures(points, threshold)
        if found.precision is not None and found.precision >= target:
            return threshold
    if not any(p.confirmed for p in points):
        return round(_floor(highest) + 0.001, 3)
    return max(candidates, key=lambda t: (_f1(figures(points, t)), t))


def calibrate(
    points: Sequence[LabelledScore], global_threshold: float, own: Mapping[str, float], *,
    min_labels: int = DEFAULT_MIN_LABELS, target: float = DEFAULT_TARGET,
) -> Calibration:
    """Proposals from the current labels; `own` holds the narratives' own thresholds now."""
    by_narrative: dict[str, list[LabelledScore]] = defaultdict(list)
    for point in points:
        by_narrative[point.narrative_id].append(point)
    proposals = []
    for narrative_id, mine in sorted(by_narrative.items()):
        if len(mine) >= min_labels:
            current = own.get(narrative_id, global_threshold)
            proposals.append(_proposal(narrative_id, mine, current, propose(mine, current, target)))
    trusted = {p.scope for p in proposals}
    shared = [p for p in points if p.narrative_id not in trusted and p.narrative_id not in own]
    global_ = None
    if shared:
        enough = len(shared) >= min_labels
        after = propose(shared, global_threshold, target) if enough else global_threshold
        global_ = replace(_proposal(GLOBAL, shared, global_threshold, after), enough=enough)
    after_global = global_.after.threshold if global_ else global_threshold
    after_own = {**own, **{p.scope: p.after.threshold for p in proposals}}
    return Calibration(
        global_, tuple(proposals),
        _total(points, lambda n: own.get(n, global_threshold)),
        _total(points, lambda n: after_own.get(n, after_global)),
    )


def _proposal(scope: str, points: Sequence[LabelledScore], before: float, after: float) -> Proposal:
    confirmed = sum(1 for p in points if p.confirmed)
    return Proposal(scope, confirmed, len(points) - confirmed,
                    figures(points, before), figures(points, after))


def _total(points: Sequence[LabelledScore], threshold_of: Callable[[str], float]) -> Figures:
    """The channel's figures when each label meets its own narrative's threshold."""
    kept = [p for p in points if p.score >= threshold_of(p.narrative_id)]
    confirmed = sum(1 for p in points if p.confirmed)
    hits = sum(1 for p in kept if p.confirmed)
    return Figures(math.nan, len(kept), hits / len(kept) if kept else None,
                   hits / confirmed if confirmed else None)


def _f1(found: Figures) -> float:
    if not found.precision or not found.recall:
        return 0.0
    return 2 * found.precision * found.recall / (found.precision + found.recall)


def _floor(score: float) -> float:
    """A threshold that keeps this score: rounded down to three decimals."""
    return math.floor(score * 1000) / 1000
