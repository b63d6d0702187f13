"""Matching an article's passages against every narrative: pure functions of vectors.

Vectors are L2-normalised, so a dot product is a cosine similarity. Nothing here loads a model
or touches the database, which keeps the matcher easy to test and to benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.embed import Embedder, Vectors
from monitor.passages import split_sentences
from monitor.types import Scored, Tier

Indices = NDArray[np.intp]


@dataclass(frozen=True)
class Thresholds:
    """Global score thresholds: ALERT at or above `alert`, WATCH at or above `watch`."""

    alert: float
    watch: float

    def __post_init__(self) -> None:
        if self.watch > self.alert:
            raise ValueError(f"watch threshold {self.watch} must not be above alert threshold {self.alert}")


class NarrativeIndex:
    """All narrative vectors in memory; a narrative may have several rows (title, examples)."""

    ids: tuple[str, ...]  # distinct narrative ids, in order of first appearance
    dimension: int

    def __init__(
        self,
        rows: Sequence[tuple[str, ArrayLike]],
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        vectors = [np.asarray(vector, dtype=np.float32).ravel() for _, vector in rows]
        matrix = np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        self._build([narrative_id for narrative_id, _ in rows], matrix, thresholds)

    @classmethod
    def from_arrays(
        cls,
        narrative_ids: Sequence[str],
        matrix: ArrayLike,
        thresholds: Mapping[str, float] | None = None,
    ) -> NarrativeIndex:
        """Build from one (rows, d) matrix whose rows align with `narrative_ids` (ids may repeat)."""
        index = cls.__new__(cls)
        index._build(narrative_ids, np.asarray(matrix, dtype=np.float32), thresholds)
        return index

    def _build(
        self, narrative_ids: Sequence[str], matrix: Vectors, thresholds: Mapping[str, float] | None
    ) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != len(narrative_ids):
            raise ValueError(f"{len(narrative_ids)} narrative ids for a matrix of shape {matrix.shape}")
        groups: dict[str, int] = {}
        codes = np.fromiter(
            (groups.setdefault(narrative_id, len(groups)) for narrative_id in narrative_ids),
            dtype=np.intp,
            count=len(narrative_ids),
        )
        # Rows of one narrative must be adjacent for reduceat; copy only when they are not.
        if np.any(codes[1:] < codes[:-1]):
            order = np.argsort(codes, kind="stable")
            matrix, codes = matrix[order], codes[order]
        self._matrix = np.ascontiguousarray(matrix)
        self._starts: Indices = np.flatnonzero(np.diff(codes, prepend=-1))
        self._groups = groups
        self._thresholds = dict(thresholds or {})
        self.ids = tuple(groups)
        self.dimension = int(matrix.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def vectors(self, narrative_id: str) -> Vectors:
        """The rows of one narrative, e.g. for `best_sentence`."""
        group = self._groups[narrative_id]
        end = self._starts[group + 1] if group + 1 < len(self._starts) else len(self._matrix)
        return self._matrix[self._starts[group] : end]

    def best(self, passages: ArrayLike) -> tuple[NDArray[np.float32], Indices]:
        """For every narrative, its best cosine over all its rows and passages, and that passage.

        With no passages every score is -inf and every passage index -1.
        """
        queries = self._check(passages)
        rows = len(self._matrix)
        if rows == 0 or len(queries) == 0:
            return np.full(len(self), -np.inf, dtype=np.float32), np.full(len(self), -1, dtype=np.intp)
        similarity = queries @ self._matrix.T  # (passages, rows)
        row_score = similarity.max(axis=0)
        if len(self._starts) == rows:  # one row per narrative: nothing to reduce
            return row_score, similarity.argmax(axis=0)
        scores: NDArray[np.float32] = np.maximum.reduceat(row_score, self._starts)
        # The first row of each narrative that reaches its best score names the passage.
        sizes = np.diff(self._starts, append=rows)
        reached = row_score == np.repeat(scores, sizes)
        best_row = np.minimum.reduceat(np.where(reached, np.arange(rows), rows), self._starts)
        return scores, similarity[:, best_row].argmax(axis=0)

    def top(self, passages: ArrayLike, k: int) -> list[Scored]:
        """The `k` best narratives, best first."""
        scores, where = self.best(passages)
        k = min(k, len(scores))
        if k <= 0:
            return []
        return self._scored(np.argpartition(-scores, k - 1)[:k], scores, where)

    def above(self, passages: ArrayLike, floor: float) -> list[Scored]:
        """Every narrative whose best score is at least `floor`, best first."""
        scores, where = self.best(passages)
        return self._scored(np.flatnonzero(scores >= floor), scores, where)

    def alert_threshold(self, narrative_id: str, default: float) -> float:
        """The narrative's own alert threshold, or `default`."""
        return self._thresholds.get(narrative_id, default)

    def lowest_threshold(self, default: float) -> float:
        """The lowest alert threshold of any narrative in the index, `default` included."""
        own = (value for key, value in self._thresholds.items() if key in self._groups)
        return min([default, *own])

    def _scored(self, chosen: Indices, scores: NDArray[np.float32], where: Indices) -> list[Scored]:
        """`chosen` narratives as Scored, best first, ties in index order; none without passages."""
        chosen = chosen[np.lexsort((chosen, -scores[chosen]))]
        return [
            Scored(self.ids[i], float(scores[i]), int(where[i])) for i in chosen.tolist() if where[i] >= 0
        ]

    def _check(self, passages: ArrayLike) -> Vectors:
        """Passage vectors as a (p, d) float32 array whose d matches the index."""
        queries = np.asarray(passages, dtype=np.float32)
        if queries.ndim != 2:
            raise ValueError(f"passage vectors must be a (passages, dimension) array, got {queries.shape}")
        if len(self._matrix) and queries.shape[1] != self.dimension:
            raise ValueError(
                f"passage vectors have dimension {queries.shape[1]}, narrative vectors {self.dimension}"
            )
        return queries


def tier_of(score: float, alert_threshold: float, watch_threshold: float) -> Tier | None:
    """ALERT at or above the alert threshold, WATCH at or above the watch threshold, else None."""
    # A narrative tuned below the global watch line alerts straight away: it has no WATCH band.
    watch = min(watch_threshold, alert_threshold)
    if score >= alert_threshold:
        return Tier.ALERT
    if score >= watch:
        return Tier.WATCH
    return None


def best_sentence(passage: str, narrative_vectors: ArrayLike, embedder: Embedder) -> str:
    """The passage's sentence most similar to any of the narrative's vectors."""
    sentences = split_sentences(passage)
    if len(sentences) <= 1:
        return passage
    narrative = np.atleast_2d(np.asarray(narrative_vectors, dtype=np.float32))
    vectors = embedder.embed(sentences, "query")
    if narrative.shape[1] != vectors.shape[1]:
        raise ValueError(
            f"narrative vectors have dimension {narrative.shape[1]}, the embedder {vectors.shape[1]}"
        )
    return sentences[int((vectors @ narrative.T).max(axis=1).argmax())]
