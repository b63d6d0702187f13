"""Evidence: the sentence of a matched passage closest to the narrative, for a whole batch at once.

A hot topic matches one article to many narratives, and every match names its evidence.
Embedding the passage's sentences once per match made the model work grow with the number of
matches (300 news items took 1,494 forward passes). Here each distinct sentence of a batch is
embedded once per model, in one call, whatever the number of matches that need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from monitor.matching.embedders import Embedder, Vectors
from monitor.matching.passages import split_sentences


@dataclass(frozen=True)
class Wanted:
    """One match's evidence to find: its passage, the narrative's rows, and the model they are of."""

    passage: str
    narrative: ArrayLike  # (rows, dimension) vectors of the narrative in `model`'s space
    model: Embedder


def choose_evidence(wanted: Sequence[Wanted]) -> list[str]:
    """For each match, the passage's sentence most similar to any of the narrative's rows.

    A passage of one sentence is its own evidence and needs no model. Each model is called at
    most once, on the distinct sentences of every other passage.
    """
    sentences = [split_sentences(w.passage) for w in wanted]
    rows: dict[int, dict[str, int]] = {}  # per model (by identity): sentence -> row of its vectors
    models: dict[int, Embedder] = {}
    for w, parts in zip(wanted, sentences, strict=True):
        if len(parts) > 1:
            models[id(w.model)] = w.model
            table = rows.setdefault(id(w.model), {})
            for sentence in parts:
                table.setdefault(sentence, len(table))
    vectors = {key: models[key].embed(list(table), "query") for key, table in rows.items()}
    chosen = []
    for w, parts in zip(wanted, sentences, strict=True):
        if len(parts) <= 1:
            chosen.append(w.passage)
            continue
        mine = vectors[id(w.model)][[rows[id(w.model)][s] for s in parts]]
        chosen.append(parts[_closest(mine, w.narrative)])
    return chosen


def _closest(sentences: Vectors, narrative_vectors: ArrayLike) -> int:
    narrative = np.atleast_2d(np.asarray(narrative_vectors, dtype=np.float32))
    if narrative.shape[1] != sentences.shape[1]:
        raise ValueError(
            f"narrative vectors have dimension {narrative.shape[1]}, the embedder {sentences.shape[1]}"
        )
    return int((sentences @ narrative.T).max(axis=1).argmax())
