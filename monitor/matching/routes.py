"""Which model scores a pair of texts, and how its score joins the same threshold scale.

With a multilingual model beside the primary one (monitor.matching.multilingual), every
(passage, narrative text) pair takes one of two routes:

- **primary**: both texts in English: the primary model's cosine plus lexical coverage
  (monitor.matching.scoring.Fusion), as before;
- **multilingual**: any other pair (a Russian article against an English narrative, an English
  article against a German example, Spanish against Spanish): the multilingual cosine c of
  the pair, measured against what that narrative text scores on ordinary news:

      z = (c - mean) / sd          score = scale * z + offset       (defaults 0.12, -0.02)

  `mean` and `sd` are the text's cosine over a sample of stored passages (mostly news that
  repeats nothing), shrunk towards a prior while the sample is small. A text that resembles
  everything (a hub) needs a higher cosine than a specific one. With the defaults the alert
  threshold 0.70 is z = 6 and the watch threshold 0.58 is z = 5: chosen on the train half of
  bench/crosslingual.py, where a threshold on the raw cosine caught half as many retellings
  for the same false alerts. Coverage cannot work across languages and is not used here; the
  background is what keeps a Russian weather report out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.matching.embedders import Vectors
from monitor.matching.index import ROWS, NarrativeIndex
from monitor.matching.languages import ENGLISH, UNKNOWN

Floats = NDArray[np.floating[Any]]  # float32 vectors, or the index's float16 rows
# Rows scored at a time against the background sample: (2,000 passages x 1,024 rows) in float64
# is 16 MB of scratch; with 4,096 rows the index build peaked ~70 MB higher (issue #17).
_ROW_BLOCK = 1024


@dataclass(frozen=True)
class CrossCalibration:
    """How a multilingual cosine becomes a score on the alert/watch scale."""

    scale: float = 0.12
    offset: float = -0.02
    prior_mean: float = 0.065  # a narrative text's mean cosine on real news (bench/crosslingual.py)
    prior_sd: float = 0.063
    prior_weight: float = 200.0  # passages the prior counts as, against the measured sample
    min_sd: float = 0.03  # a tiny sample must not make every cosine look exceptional
    # The bar must rise with the number of narrative texts a passage is tested against: at
    # z = 6, one German news item in four alerted on one of 20,000 CheckThat! claims, and one
    # in 200 on 30 narratives. It rises by the expected maximum of that many texts' z beyond
    # `base_texts` (Gaussian), and further if need be until all but 1 - `quantile` of the
    # sample's non-English passages (those that take this route against every text) stay
    # below the watch threshold.
    quantile: float = 0.995
    base_texts: int = 30

    def row_affine(self, rows: Floats, sample: Vectors) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Per narrative row: (a, b) so that a * cosine + b is its score (see the module doc)."""
        mean, sd = self.background(rows, sample)
        a = self.scale / sd
        return a.astype(np.float32), (self.offset - a * mean).astype(np.float32)

    def raised(
        self, rows: Floats, sample: Vectors, watch: float, foreign: NDArray[np.bool_] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
        """`row_affine` with every offset lowered by the rise the number of rows calls for.

        `foreign` marks the sample passages that are not English (None: all of them).
        """
        scale, offset = self.row_affine(rows, sample)
        expected = np.sqrt(2 * np.log(max(len(rows), self.base_texts))) - np.sqrt(2 * np.log(self.base_texts))
        rise = self.scale * float(expected)
        others = sample if foreign is None else sample[foreign]
        if len(others) >= self.prior_weight and len(rows):
            best = _best_scores(others, rows, scale, offset)
            rise = max(rise, float(np.quantile(best, self.quantile)) - watch)
        rise = max(rise, 0.0)
        return scale, (offset - rise).astype(np.float32), rise

    def background(self, rows: Floats, sample: Vectors) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Each row's mean and standard deviation of cosine over the sample, shrunk to the prior."""
        n, w = float(len(sample)), self.prior_weight
        if len(sample) == 0 or len(rows) == 0:
            mean = np.full(len(rows), self.prior_mean)
            return mean, np.full(len(rows), self.prior_sd)
        first, squares = _moments(sample, rows)
        mean = (n * first + w * self.prior_mean) / (n + w)
        second = (n * squares + w * (self.prior_sd**2 + self.prior_mean**2)) / (n + w)
        sd = np.sqrt(np.maximum(second - mean**2, 0.0))
        return mean, np.maximum(sd, self.min_sd)


@dataclass(frozen=True)
class RoutedIndexes:
    """The narrative rows split for the two routes (all built from one dual matrix)."""

    primary: NarrativeIndex  # English rows, primary half: English passages
    foreign: NarrativeIndex  # non-English rows, multilingual half: English passages
    every: NarrativeIndex  # all rows, multilingual half: passages in any other language
    rise: float = 0.0  # how far the multilingual bar was raised for the number of rows

    @classmethod
    def build(
        cls,
        narrative_ids: Sequence[str],
        languages: Sequence[str],
        matrix: Vectors,
        parts: tuple[int, int],
        thresholds: dict[str, float],
        sample: Vectors,
        calibration: CrossCalibration,
        watch: float,
        sample_languages: Sequence[str] | None = None,
    ) -> RoutedIndexes:
        """`matrix` holds dual rows ([primary | multilingual] / sqrt 2); `sample` dual passages."""
        primary_half, multi_half = row_halves(matrix, parts)
        _, sample_multi = split_halves(sample, parts)
        english = np.array([row_language(language) == ENGLISH for language in languages], dtype=bool)
        foreign = None
        if sample_languages is not None:
            foreign = np.array([language != ENGLISH for language in sample_languages], dtype=bool)
        scale, offset, rise = calibration.raised(multi_half, sample_multi, watch, foreign)
        ids = np.asarray(narrative_ids, dtype=object)
        return cls(
            rise=rise,
            primary=NarrativeIndex.from_arrays(list(ids[english]), _rows(primary_half, english), thresholds),
            foreign=NarrativeIndex.from_arrays(list(ids[~english]), _rows(multi_half, ~english), thresholds,
                                               (scale[~english], offset[~english])),
            every=NarrativeIndex.from_arrays(list(ids), multi_half, thresholds, (scale, offset)),
        )


def _moments(sample: Vectors, rows: Floats) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each row's mean cosine and mean squared cosine over the sample, a block of rows at a time.

    At once, (2,000 passages x 100,000 rows) in float64 took 2.9 GB at start-up (issue #17).
    """
    first, squares = np.empty(len(rows)), np.empty(len(rows))
    for low in range(0, len(rows), _ROW_BLOCK):
        block = np.asarray(sample @ _float32(rows[low : low + _ROW_BLOCK]).T, dtype=np.float64)
        first[low : low + _ROW_BLOCK] = block.mean(axis=0)
        block **= 2
        squares[low : low + _ROW_BLOCK] = block.mean(axis=0)
    return first, squares


def _best_scores(
    sample: Vectors, rows: Floats, scale: NDArray[np.float32], offset: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Each sample passage's best calibrated score over all rows, a block of rows at a time."""
    best = np.full(len(sample), -np.inf, dtype=np.float32)
    for low in range(0, len(rows), _ROW_BLOCK):
        block = sample @ _float32(rows[low : low + _ROW_BLOCK]).T
        block *= scale[low : low + _ROW_BLOCK]
        block += offset[low : low + _ROW_BLOCK]
        np.maximum(best, block.max(axis=1), out=best)
    return best


def _rows(vectors: Floats, chosen: NDArray[np.bool_]) -> Floats:
    """The chosen rows; the array itself when that is all of them (100,000 rows are 73 MB a copy)."""
    return vectors if bool(chosen.all()) else vectors[chosen]


def split_halves(vectors: Floats, parts: tuple[int, int]) -> tuple[Vectors, Vectors]:
    """The primary and multilingual unit vectors inside dual vectors.

    Each half is scaled to unit length on its own: a dual row holds both at 1/sqrt(2), a passage
    embedded for the multilingual route alone holds [0 | multilingual] (its primary half stays 0,
    which scores 0 against everything).
    """
    return _halves(vectors, parts, np.float32)


def row_halves(matrix: Floats, parts: tuple[int, int]) -> tuple[NDArray[np.float16], NDArray[np.float16]]:
    """`split_halves` of narrative rows, in float16 as the indexes keep them.

    A block of rows at a time: no float32 copy of either half is made (146 and 195 MB at
    100,000 rows, issue #17).
    """
    return _halves(matrix, parts, ROWS)


def _halves(vectors: Floats, parts: tuple[int, int], dtype: type[np.floating[Any]]) -> tuple[Any, Any]:
    first = parts[0]
    primary = np.zeros((len(vectors), parts[0]), dtype=dtype)
    multi = np.zeros((len(vectors), parts[1]), dtype=dtype)
    if vectors.shape[1] != sum(parts):  # no rows at all (an empty index or sample)
        return primary, multi
    for low in range(0, len(vectors), _ROW_BLOCK):
        block = _float32(vectors[low : low + _ROW_BLOCK])
        primary[low : low + _ROW_BLOCK] = _unit_rows(block[:, :first])
        multi[low : low + _ROW_BLOCK] = _unit_rows(block[:, first:])
    return primary, multi


def _unit_rows(half: Vectors) -> Vectors:
    norms = np.linalg.norm(half, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: Vectors = half / norms
    return unit


def _float32(rows: Floats) -> Vectors:
    """Rows for a BLAS product (which has no float16 one); no copy when they are float32."""
    return np.asarray(rows, dtype=np.float32)


def row_language(language: str) -> str:
    """A narrative text of unknown language (too short to tell) counts as English."""
    return ENGLISH if language == UNKNOWN else language


def passage_languages(detected: Sequence[str]) -> list[str]:
    """Passages too short to tell take the article's most common language (English if none)."""
    known = Counter(language for language in detected if language != UNKNOWN)
    usual = known.most_common(1)[0][0] if known else ENGLISH
    return [usual if language == UNKNOWN else language for language in detected]
