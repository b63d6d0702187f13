"""Lexical evidence: how much of a narrative text's distinctive vocabulary a passage repeats.

A small embedding model scores an article about the same topic close to a claim it never
makes ("whales stranded in a harbour" against "100 whales trapped in an underwater jail").
Repeating a claim usually repeats its rarer words (names, places, numbers); reporting on the
topic shares only the common ones. Coverage measures that: the IDF-weighted share of a
narrative's distinct terms found in the passage, from 0 (none) to 1 (all).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from scipy import sparse

# Words of two or more letters or digits; English stop words never count as evidence.
_TOKENS = r"(?u)\b\w\w+\b"
MIN_WEIGHT = 1.0  # of the median text's weight, that every text counts as holding


class LexicalIndex:
    """The terms of every narrative text, weighted by rarity among narratives."""

    def __init__(self, narrative_ids: Sequence[str], texts: Sequence[str]) -> None:
        """`texts[i]` belongs to `narrative_ids[i]`; a narrative may have several texts."""
        if len(narrative_ids) != len(texts):
            raise ValueError(f"{len(narrative_ids)} narrative ids for {len(texts)} texts")
        groups: dict[str, int] = {}
        codes = np.fromiter((groups.setdefault(n, len(groups)) for n in narrative_ids), dtype=np.intp,
                            count=len(narrative_ids))
        # Each narrative's texts as one run of rows: narrative k owns rows[_starts[k]:_starts[k + 1]].
        self._order = np.argsort(codes, kind="stable")
        self._starts = np.searchsorted(codes[self._order], np.arange(len(groups) + 1))
        self._groups = groups
        # scikit-learn and scipy load here, not at import: `monitor --help` must not wait for them.
        from sklearn.feature_extraction.text import CountVectorizer

        self._vectorizer = CountVectorizer(binary=True, stop_words="english", token_pattern=_TOKENS,
                                           dtype=np.float32)
        self._weights = self._fit(codes, texts, len(groups))

    def _fit(self, codes: NDArray[np.intp], texts: Sequence[str], narratives: int) -> sparse.csr_matrix:
        from scipy import sparse

        try:
            rows = self._vectorizer.fit_transform(texts).tocsr()
        except ValueError:  # no text has a single term: nothing can be evidence
            self._vectorizer.fit(["placeholder"])
            return sparse.csr_matrix((len(texts), 1), dtype=np.float32)
        # Rarity among narratives, not texts: a narrative with twenty examples counts once.
        owner = sparse.csr_matrix((np.ones(len(texts), dtype=np.float32), (codes, np.arange(len(texts)))),
                                  shape=(narratives, len(texts)))
        terms = (owner @ rows).tocsr()
        terms.data[:] = 1.0
        documents = np.asarray(terms.sum(axis=0), dtype=np.float32).ravel()
        idf = (np.log((1.0 + narratives) / (1.0 + documents)) + 1.0).astype(np.float32)
        weighted = rows.multiply(idf).tocsr()
        totals = np.asarray(weighted.sum(axis=1), dtype=np.float32).ravel()
        # A claim of two common words ("Ukraine is part of Russia") is fully covered by any
        # headline on the topic: each text counts as holding at least the median text's
        # weight (MIN_WEIGHT), so sharing a few common words is little evidence.
        floor = MIN_WEIGHT * float(np.median(totals[totals > 0])) if np.any(totals > 0) else 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / np.maximum(totals, floor)) @ weighted, dtype=np.float32)

    def coverage(self, passage: str, narrative_ids: Sequence[str]) -> NDArray[np.float32]:
        """For each narrative named, the best weighted share of one of its texts' terms in `passage`."""
        if not narrative_ids:
            return np.zeros(0, dtype=np.float32)
        present = self._vectorizer.transform([passage])
        present.data[:] = 1.0
        groups = [self._groups[n] for n in narrative_ids]
        spans = [(int(self._starts[g]), int(self._starts[g + 1])) for g in groups]
        rows = np.concatenate([self._order[start:end] for start, end in spans])
        per_row = np.asarray((self._weights[rows] @ present.T).toarray(), dtype=np.float32).ravel()
        offsets = np.cumsum([0] + [end - start for start, end in spans[:-1]])
        return np.maximum.reduceat(per_row, offsets).astype(np.float32)
