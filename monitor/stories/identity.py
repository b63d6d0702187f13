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

from monitor.stories.cluster import Pairs, Vectors, clusters, neighbours
from monitor.types import WindowArticle

MAX_PER_OUTLET = 3  # independent sources per outlet in a story, on average
STEP, STRICTEST = 0.05, 0.95  # how a topic is cut into stories


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


def fresh(articles: Sequence[WindowArticle]) -> list[int]:
    """Positions of the window's articles no update has seen, oldest first."""
    new = [i for i, a in enumerate(articles) if not a.seen and a.in_window]
    return sorted(new, key=lambda i: (articles[i].published, articles[i].article_id))


def collapse_copies(articles: Sequence[WindowArticle], new: Sequence[int], pairs: Pairs,
                    near_duplicate: float) -> list[int]:
    """For each article, the position of the article standing for it and its copies.

    Seen articles keep their unit. A new one is a copy when it repeats a stored text
    (`duplicate_of`) or its lead is near-identical (the alert planner's one-story rule) to an
    article seen before it; otherwise it stands for itself. `pairs` are (row of `new`,
    position, cosine) for every cosine at or above the lower of the two thresholds.
    """
    position = {a.article_id: i for i, a in enumerate(articles)}
    unit = [position.get(a.unit_id, i) if a.seen and a.unit_id is not None else i
            for i, a in enumerate(articles)]
    partners: dict[int, list[tuple[float, int]]] = {}
    rows, cols, sims = pairs
    for r, c, s in zip(rows.tolist(), cols.tolist(), sims.tolist(), strict=True):
        if s >= near_duplicate:
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
    # A copy published before its original points at it before the original found its own unit.
    return [_root(unit, i) for i in range(len(unit))]


def _root(unit: Sequence[int], i: int) -> int:
    seen = {i}
    while unit[i] != i and unit[i] not in seen:
        i = unit[i]
        seen.add(i)
    return i


def dirty_units(articles: Sequence[WindowArticle], vectors: Vectors, unit: Sequence[int], new: Sequence[int],
                pairs: Pairs, similarity: float) -> tuple[list[int], Pairs]:
    """Units to cluster again (new ones, the loose ones and whole stories they come close to), and
    the pairs among them at or above `similarity`, as rows of the returned list."""
    rows, cols, sims = (p.tolist() for p in pairs)
    links = [(unit[new[r]], unit[c]) for r, c, s in zip(rows, cols, sims, strict=True) if s >= similarity]
    near = {u for u in {unit[i] for i in new} | {u for _, u in links} if articles[u].in_window}
    stories = {s for u in near if (s := articles[u].story_id) is not None}
    whole = {u for u in set(unit) if articles[u].in_window and articles[u].story_id in stories}
    dirty = sorted(near | whole)
    index = {u: k for k, u in enumerate(dirty)}
    old = [u for u in dirty if articles[u].seen]
    found = [(index[a], index[b]) for a, b in links if a != b and a in index and b in index]
    if old:  # pairs between units seen before: the new articles' search did not cover them
        rows, cols, _ = neighbours(vectors[old], vectors[old], similarity)
        found += [(index[old[r]], index[old[c]]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
    both = found + [(b, a) for a, b in found]
    edges = (np.array([a for a, _ in both], dtype=np.intp), np.array([b for _, b in both], dtype=np.intp),
             np.ones(len(both), dtype=np.float32))
    return dirty, edges


def regroup(articles: Sequence[WindowArticle], vectors: Vectors, unit: list[int], dirty: Sequence[int],
            edges: Pairs, similarity: float, min_outlets: int) -> Grouping:
    """Story keys for the dirty units after clustering them; other units keep their story."""
    grouping = Grouping(unit, {u: articles[u].story_id for u in set(unit)})
    found = clusters(vectors[list(dirty)], similarity, edges) if dirty else []
    groups = [part for g in found
              for part in split_topics(articles, vectors, [dirty[i] for i in g], similarity)]
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


def split_topics(articles: Sequence[WindowArticle], vectors: Vectors, group: list[int],
                 similarity: float) -> list[list[int]]:
    """A group is a story only if few of its sources share an outlet; otherwise it is a topic or
    a language the model cannot read (every Swedish text looks alike to it): cluster it again,
    stricter, until its parts are.

    One outlet tells a story once or a few times; a hundred articles from five outlets is what
    the model sees as "the same" when it does not tell them apart.
    """
    outlets = len({articles[u].feed_id for u in group})
    if len(group) <= MAX_PER_OUTLET * outlets or similarity >= STRICTEST:
        return [group]
    stricter = min(similarity + STEP, STRICTEST)
    parts = clusters(vectors[group], stricter)
    return [piece for part in parts
            for piece in split_topics(articles, vectors, [group[i] for i in part], stricter)]


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
