"""Scoring texts against narratives: one path for the pipeline, `monitor match` and `monitor eval`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.embed import Embedder, Vectors
from monitor.match import NarrativeIndex, Thresholds, best_sentence, tier_of
from monitor.passages import split_passages
from monitor.types import Narrative, Scored, Tier


def narrative_texts(narrative: Narrative) -> list[str]:
    """The texts embedded for a narrative: the claim, then each example phrasing."""
    return [narrative.title, *narrative.examples]


@dataclass(frozen=True)
class EmbeddedText:
    """An article (or any text) split into passages, with one vector per passage."""

    passages: tuple[str, ...]
    vectors: Vectors


@dataclass(frozen=True)
class TextScore:
    """How well a text matches one narrative, with the evidence."""

    narrative_id: str
    score: float
    tier: Tier | None  # None: below the watch threshold
    passage_index: int
    passage: str
    evidence: str


class Scorer:
    """Embeds texts and scores them against every narrative in the index."""

    def __init__(
        self,
        embedder: Embedder,
        index: NarrativeIndex,
        thresholds: Thresholds,
        max_passages: int = 32,
        window_tokens: int | None = 64,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.thresholds = thresholds
        self.max_passages = max_passages
        self.window_tokens = window_tokens

    def embed_texts(self, items: Sequence[tuple[str, str]]) -> list[EmbeddedText]:
        """Split each (title, text) into passages and embed them all in one batch."""
        split = [
            split_passages(title, text, self.embedder, self.max_passages, self.window_tokens)
            for title, text in items
        ]
        vectors = self.embedder.embed([p for passages in split for p in passages], "query")
        bounds = np.cumsum([0] + [len(passages) for passages in split])
        return [
            EmbeddedText(tuple(passages), vectors[bounds[i] : bounds[i + 1]])
            for i, passages in enumerate(split)
        ]

    def matches(self, text: EmbeddedText) -> list[TextScore]:
        """Every narrative the text reaches the watch tier for, best first."""
        scored = self.index.above(text.vectors, self._floor())
        results = [self._describe(s, text) for s in scored]
        return [r for r in results if r.tier is not None]

    def top(self, text: EmbeddedText, k: int) -> list[TextScore]:
        """The k best narratives for the text, whatever their tier."""
        return [self._describe(s, text) for s in self.index.top(text.vectors, k)]

    def tier(self, narrative_id: str, score: float) -> Tier | None:
        """The tier a score earns for this narrative (its own threshold or the global one)."""
        alert = self.index.alert_threshold(narrative_id, self.thresholds.alert)
        return tier_of(score, alert, self.thresholds.watch)

    def _floor(self) -> float:
        # A per-narrative alert threshold below the global watch threshold lowers the floor.
        return min(self.thresholds.watch, self.index.lowest_threshold(self.thresholds.alert))

    def _describe(self, scored: Scored, text: EmbeddedText) -> TextScore:
        passage = text.passages[scored.passage_index]
        evidence = best_sentence(passage, self.index.vectors(scored.narrative_id), self.embedder)
        return TextScore(
            narrative_id=scored.narrative_id, score=scored.score,
            tier=self.tier(scored.narrative_id, scored.score),
            passage_index=scored.passage_index, passage=passage, evidence=evidence,
        )
