"""Which articles are copies, which need clustering again, and which story id each group keeps.

An update clusters only what changed: the articles not seen before, and the stories and
loose articles they come close to. Everything else keeps its story, so a run costs time in
proportion to the window (new articles against all), not to its square.

Identity rules, applied to the groups of the re-clustered part, largest group first:
- a group takes the id of the stored story that shares most of its members (continuation);
- a story whose members spread over several groups keeps its id on the largest (a split: the
  smaller parts become new stories that remember where they came from);
- a stored story whose members all went into a group that took another id is absorbed: the
  group records the absorbed id (a merge).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from monitor.stories.cluster import Vectors, clusters, neighbours
from monitor.types import WindowArticle


@dataclass
class Grouping:
    """Where one update puts every article: its unit (copies collapsed) and its story key."""

    unit: list[int]  # article position -> position of the article standing for its copies
    story: dict[int, int | None]  # unit position -> story key (stored id, or negative for new)
    absorbed: dict[int, int] = field(default_factory=dict)  # stored id -> key it merged into
    split_from: dict[int, int] = field(default_factory=dict)  # new key -> stored id it split from
    next_key: int = -1

    def new_key(self) -> int:
        key, self.next_key = self.next_key, self.next_key - 1
        return key


def collapse_copies(articles: Sequence[WindowArticle], vectors: Vectors, near_duplicate: float) -> list[int]:
    """For each article, the position of the article standing for it and its copies.

    Seen articles keep their unit. A new one is a copy when it repeats a stored text
    (`duplicate_of`) or its lead is near-identical (the alert planner's one-story rule) to an
    article seen before it; otherwise it stands for itself.
    """
    position = {a.article_id: i for i, a in enumerate(articles)}
    unit = [position.get(a.unit_id, i) if a.seen and a.unit_id is not None else i
            for i, a in enumerate(articles)]
    new = [i for i, a in enumerate(articles) if not a.seen and a.in_window]
    new.sort(key=lambda i: (articles[i].published, articles[i].article_id))
    partners: dict[int, list[tuple[float, int]]] = {}
    if new:
        rows, cols, sims = neighbours(vectors[new], vectors, near_duplicate)
        for r, c, s in zip(rows.tolist(), cols.tolist(), sims.tolist(), strict=True):
            partners.setdefault(new[r], []).append((s, c))
    done = {i for i, a in enumerate(articles) if a.seen}
    for i in new:
        original = position.get(articles[i].duplicate_of or -1)
        earlier = sorted((p for p in partners.get(i, []) if p[1] in done and p[1] != i), reverse=True)
        if original is not None and original != i:
            unit[i] = unit[original]
        elif earlier:
            unit[i] = unit[earlier[0][1]]
        done.add(i)
    return unit


def dirty_units(articles: Sequence[WindowArticle], vectors: Vectors, unit: Sequence[int],
                similarity: float) -> list[int]:
    """Units to cluster again: new ones, the loose ones and whole stories they come close to."""
    units = sorted({u for i, u in enumerate(unit) if articles[i].in_window and articles[u].in_window})
    fresh = [u for u in units if not articles[u].seen]
    if not fresh:
        return []
    _, touched, _ = neighbours(vectors[fresh], vectors[units], similarity)
    near = {units[int(t)] for t in touched}
    stories = {articles[u].story_id for u in near if articles[u].story_id is not None}
    return sorted(set(fresh) | near | {u for u in units if articles[u].story_id in stories})


def regroup(articles: Sequence[WindowArticle], vectors: Vectors, unit: list[int], dirty: Sequence[int],
            similarity: float, min_outlets: int) -> Grouping:
    """Story keys for the dirty units after clustering them; other units keep their story."""
    grouping = Grouping(unit, {u: articles[u].story_id for u in set(unit)})
    groups = [[dirty[i] for i in g] for g in clusters(vectors[list(dirty)], similarity)] if dirty else []
    groups.sort(key=lambda g: (-len(g), min(articles[u].article_id for u in g)))
    taken: set[int] = set()
    decided: list[tuple[list[int], Counter[int], int | None]] = []
    for group in groups:
        stored = Counter(s for u in group if (s := articles[u].story_id) is not None)
        best = [s for s, _ in sorted(stored.items(), key=lambda item: (-item[1], item[0]))]
        keep = next((s for s in best if s not in taken), None)
        if keep is not None:
            taken.add(keep)
        decided.append((group, stored, keep))
    for group, stored, keep in decided:
        if keep is not None:
            _assign(grouping, group, keep)
        key = keep if keep is not None else _new_story(articles, grouping, group, stored, min_outlets)
        for old in stored:
            if old not in taken and old not in grouping.absorbed and key is not None:
                grouping.absorbed[old] = key
    return grouping


def _new_story(articles: Sequence[WindowArticle], grouping: Grouping, group: list[int],
               stored: Counter[int], min_outlets: int) -> int | None:
    """A new story for a group with enough outlets, or for the smaller part of a split."""
    if len({articles[u].feed_id for u in group}) < min_outlets:
        _assign(grouping, group, None)
        return None
    key = grouping.new_key()
    if stored:
        grouping.split_from[key] = max(stored, key=lambda s: (stored[s], -s))
    _assign(grouping, group, key)
    return key


def _assign(grouping: Grouping, group: list[int], key: int | None) -> None:
    for u in group:
        grouping.story[u] = key


def story_of(grouping: Grouping, articles: Sequence[WindowArticle], i: int) -> int | None:
    """An article's story after the update: its unit's, or (older members) its stored one, merges followed."""
    article = articles[i]
    key = grouping.story.get(grouping.unit[i]) if article.in_window else article.story_id
    seen: set[int] = set()
    while key is not None and key in grouping.absorbed and key not in seen:
        seen.add(key)
        key = grouping.absorbed[key]
    return key


def centroid_order(vectors: Vectors, rows: Sequence[int]) -> list[int]:
    """`rows` from the closest to their mean vector to the farthest (the first is the representative)."""
    matrix = vectors[list(rows)]
    mean = matrix.mean(axis=0)
    scores = matrix @ (mean / (np.linalg.norm(mean) or 1.0))
    return [rows[int(i)] for i in np.argsort(-scores, kind="stable")]
