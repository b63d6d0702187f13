"""Matching an article's passages against every narrative: pure functions of vectors.

Vectors are L2-normalised, so a dot product is a cosine similarity. Nothing here loads a model
or touches the database, which keeps the matcher easy to test and to benchmark.

The index keeps its rows in float16, half the memory of float32 (100,000 dual rows: 171 MB
instead of 342 MB, issue #17), and scores a block of rows at a time in float32. A unit
vector's components lose at most 2^-11 of their value, so a cosine moves by well under 1e-3
(tests/test_match.py measures it on the real model's vectors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.matching.embedders import Embedder, Vectors
from monitor.matching.evidence import Wanted, choose_evidence
from monitor.types import Scored, Tier

Indices = NDArray[np.intp]
_Floats = TypeVar("_Floats", NDArray[np.float32], NDArray[np.float16])

# Scratch for one block of the (passages x rows) similarity: small enough to stay near the
# cache, large enough that each matrix product is one efficient BLAS call. With very many
# passages the block stays at _MIN_BLOCK rows: scratch then stays below the passages' own size.
_BLOCK_BYTES = 8 * 2**20
_MIN_BLOCK = 256
ROWS: type[np.float16] = np.float16  # how the index holds its vectors


@dataclass(frozen=True)
class Thresholds:
    """Global score thresholds: ALERT at or above `alert`, WATCH at or above `watch`."""

    alert: float
    watch: float

    def __post_init__(self) -> None:
        if self.watch > self.alert:
            raise ValueError(f"watch threshold {self.watch} must not be above alert threshold {self.alert}")


class _Found(NamedTuple):
    """Parallel arrays: for each text and row (or narrative), the best score and its passage."""

    text: Indices
    row: Indices
    score: NDArray[np.float32]
    passage: Indices


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
        calibration: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> NarrativeIndex:
        """Build from one (rows, d) matrix whose rows align with `narrative_ids` (ids may repeat).

        `calibration` = (scale, offset) per row turns a row's cosine c into scale * c + offset
        before rows are compared (see monitor.matching.routes); the scales must be positive.
        """
        index = cls.__new__(cls)
        index._build(narrative_ids, np.asarray(matrix), thresholds, calibration)
        return index

    def _build(
        self, narrative_ids: Sequence[str], matrix: NDArray[np.floating[Any]],
        thresholds: Mapping[str, float] | None, calibration: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != len(narrative_ids):
            raise ValueError(f"{len(narrative_ids)} narrative ids for a matrix of shape {matrix.shape}")
        # No copy when the rows come in float16 already (monitor.matching.routes splits them so).
        matrix = _finite(np.asarray(matrix, dtype=ROWS))
        groups: dict[str, int] = {}
        codes = np.fromiter(
            (groups.setdefault(narrative_id, len(groups)) for narrative_id in narrative_ids),
            dtype=np.intp,
            count=len(narrative_ids),
        )
        scale, offset = _calibration(calibration, len(codes))
        # Rows of one narrative must be adjacent for reduceat; copy only when they are not.
        if np.any(codes[1:] < codes[:-1]):
            order = np.argsort(codes, kind="stable")
            matrix, codes = matrix[order], codes[order]
            scale = scale[order] if scale is not None else None
            offset = offset[order] if offset is not None else None
        self._scale, self._offset = scale, offset
        self._matrix = np.ascontiguousarray(matrix)
        self._starts: Indices = np.flatnonzero(np.diff(codes, prepend=-1))
        self._groups = groups
        self._thresholds = dict(thresholds or {})
        self.ids = tuple(groups)
        self.dimension = int(matrix.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """The memory its vectors and their calibration take."""
        calibration = sum(part.nbytes for part in (self._scale, self._offset) if part is not None)
        return int(self._matrix.nbytes) + calibration

    def vectors(self, narrative_id: str) -> Vectors:
        """The rows of one narrative (float32), e.g. for `best_sentence`."""
        group = self._groups[narrative_id]
        end = self._starts[group + 1] if group + 1 < len(self._starts) else len(self._matrix)
        return self._matrix[self._starts[group] : end].astype(np.float32)

    def best(self, passages: ArrayLike) -> tuple[NDArray[np.float32], Indices]:
        """For every narrative, its best cosine over all its rows and passages, and that passage.

        With no passages every score is -inf and every passage index -1.
        """
        queries = self._check(passages)
        rows = len(self._matrix)
        if rows == 0 or len(queries) == 0:
            return np.full(len(self), -np.inf, dtype=np.float32), np.full(len(self), -1, dtype=np.intp)
        found = self._row_best(queries, np.zeros(1, dtype=np.intp), -np.inf)  # every row, in order
        row_score, row_passage = found.score, found.passage
        if len(self._starts) == rows:  # one row per narrative: nothing to reduce
            return row_score, row_passage
        scores: NDArray[np.float32] = np.maximum.reduceat(row_score, self._starts)
        # The first row of each narrative that reaches its best score names the passage.
        sizes = np.diff(self._starts, append=rows)
        reached = row_score == np.repeat(scores, sizes)
        best_row = np.minimum.reduceat(np.where(reached, np.arange(rows), rows), self._starts)
        return scores, row_passage[best_row]

    def top(self, passages: ArrayLike, k: int) -> list[Scored]:
        """The `k` best narratives, best first."""
        scores, where = self.best(passages)
        k = min(k, len(scores))
        if k <= 0:
            return []
        return self._scored(np.argpartition(-scores, k - 1)[:k], scores, where)

    def above(self, passages: ArrayLike, floor: float) -> list[Scored]:
        """Every narrative whose best score is at least `floor`, best first."""
        return self.above_each([passages], floor)[0]

    def above_each(self, texts: Sequence[ArrayLike], floor: float) -> list[list[Scored]]:
        """`above(passages, floor)` for each text's passages, all scored in one pass over the index."""
        checked = [self._check(passages) for passages in texts]
        counts = np.array([len(queries) for queries in checked], dtype=np.intp)
        results: list[list[Scored]] = [[] for _ in checked]
        scored = np.flatnonzero(counts)  # texts without passages match nothing
        if len(self._matrix) == 0 or len(scored) == 0:
            return results
        queries = np.concatenate([checked[i] for i in scored.tolist()])
        starts = np.concatenate([[0], np.cumsum(counts[scored])[:-1]]).astype(np.intp)
        rows = self._row_best(queries, starts, floor)
        if len(rows.text) == 0:  # the usual case: nothing reaches the floor
            return results
        found = self._narrative_best(rows)
        bounds = np.searchsorted(found.text, np.arange(len(scored) + 1))
        for i, text in enumerate(scored.tolist()):
            part = slice(bounds[i], bounds[i + 1])
            results[text] = [
                Scored(self.ids[n], s, p)
                for n, s, p in zip(found.row[part].tolist(), found.score[part].tolist(),
                                   found.passage[part].tolist(), strict=True)
            ]
        return results

    def _row_best(self, queries: Vectors, starts: Indices, floor: float) -> _Found:
        """Each (text, row) whose best passage reaches `floor`: score and first passage reaching it.

        `starts` are the first query of each text. The similarity is computed a block of rows at
        a time, so its scratch memory (and the block's rows in float32) stays near _BLOCK_BYTES
        however many passages come in.
        """
        wide = queries.itemsize * max(len(queries), self.dimension)
        block = max(_MIN_BLOCK, _BLOCK_BYTES // wide)
        parts = []
        for low in range(0, len(self._matrix), block):
            rows = self._matrix[low : low + block].astype(np.float32)  # BLAS has no float16 product
            similarity = queries @ rows.T  # (passages, rows in block)
            if self._scale is not None and self._offset is not None:
                # Positive scales keep each column's order, so the best passage stays the best.
                similarity *= self._scale[low : low + block]
                similarity += self._offset[low : low + block]
            top = _text_max(similarity, starts)  # (texts, rows in block)
            text, column = np.nonzero(top >= floor)
            passage = _first_passages(similarity, starts, text, column)
            parts.append(_Found(text, column + low, top[text, column], passage))
        return _Found(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))

    def _narrative_best(self, rows: _Found) -> _Found:
        """Rows reduced to narratives (best score, then first row); ordered by text, best first.

        The `row` field of the result holds the narrative's position in `ids`.
        """
        narrative = np.searchsorted(self._starts, rows.row, side="right") - 1
        order = np.lexsort((rows.row, -rows.score, narrative, rows.text))
        text, narrative = rows.text[order], narrative[order]
        first = np.flatnonzero((np.diff(text, prepend=-1) != 0) | (np.diff(narrative, prepend=-1) != 0))
        text, narrative = text[first], narrative[first]
        score, passage = rows.score[order][first], rows.passage[order][first]
        ranked = np.lexsort((narrative, -score, text))  # ties keep index order
        return _Found(text[ranked], narrative[ranked], score[ranked], passage[ranked])

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
        return _finite(queries)


def _calibration(
    calibration: tuple[ArrayLike, ArrayLike] | None, rows: int
) -> tuple[NDArray[np.float32] | None, NDArray[np.float32] | None]:
    if calibration is None:
        return None, None
    scale, offset = (np.asarray(part, dtype=np.float32).ravel() for part in calibration)
    if len(scale) != rows or len(offset) != rows:
        raise ValueError(f"calibration for {len(scale)} and {len(offset)} rows, the index has {rows}")
    if not np.all(scale > 0):
        raise ValueError("calibration scales must be positive")
    return scale, offset


def _finite(vectors: _Floats) -> _Floats:
    """The vectors with NaN and infinities zeroed: a corrupt row then matches nothing, and every
    comparison with a floor stays meaningful (NaN >= x is False, which would misalign rows)."""
    if np.isfinite(vectors).all():
        return vectors
    return np.nan_to_num(vectors, nan=0.0, posinf=0.0, neginf=0.0)


def _text_max(similarity: Vectors, starts: Indices) -> Vectors:
    """The best similarity of each text's passages, column by column."""
    if len(starts) == len(similarity):  # one passage per text
        return similarity
    ends = np.append(starts[1:], len(similarity)).tolist()
    top = np.empty((len(starts), similarity.shape[1]), dtype=similarity.dtype)
    for text, (start, end) in enumerate(zip(starts.tolist(), ends, strict=True)):
        # A slice of whole rows is contiguous, so this is a fast elementwise max (reduceat is not).
        similarity[start:end].max(axis=0, out=top[text])
    return top


def _first_passages(similarity: Vectors, starts: Indices, text: Indices, column: Indices) -> Indices:
    """For each (text, column): the text's first passage with the best similarity in that column."""
    if len(starts) == 1 and len(column) == similarity.shape[1]:
        return np.asarray(similarity.argmax(axis=0), dtype=np.intp)
    ends = np.append(starts[1:], len(similarity))
    passage = np.empty(len(text), dtype=np.intp)
    groups = np.flatnonzero(np.diff(text, prepend=-1)).tolist()  # `text` comes sorted
    for first, last in pairwise([*groups, len(text)]):
        t = text[first]
        passage[first:last] = similarity[starts[t] : ends[t], column[first:last]].argmax(axis=0)
    return passage


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
    return choose_evidence([Wanted(passage, narrative_vectors, embedder)])[0]
