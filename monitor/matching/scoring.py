"""Scoring texts against narratives: one path for the pipeline, `monitor match` and `monitor eval`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.matching.embedders import Embedder, Vectors
from monitor.matching.index import NarrativeIndex, Thresholds, best_sentence, tier_of
from monitor.matching.lexical import LexicalIndex
from monitor.matching.passages import split_passages
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
    evidence: str  # the passage's sentence closest to the narrative; "" when not asked for
    cosine: float = 0.0  # the embedding similarity alone
    coverage: float = 0.0  # share of the narrative's weighted terms in the passage (monitor.matching.lexical)


@dataclass(frozen=True)
class Fusion:
    """How lexical evidence joins the embedding: score = cosine + weight x coverage.

    A narrative whose terms the passage covers less than `floor` reaches no tier: measured on
    real news (bench/precision.py), most chance matches share no distinctive word with the claim.
    """

    weight: float = 0.2
    floor: float = 0.1

    def score(self, cosine: float, coverage: float) -> float:
        return cosine + self.weight * coverage


PLAIN = Fusion(weight=0.0, floor=0.0)  # cosine alone
DEFAULT_FUSION = Fusion()  # what the pipeline uses unless feeds.toml says otherwise


class Scorer:
    """Embeds texts and scores them against every narrative in the index."""

    def __init__(
        self,
        embedder: Embedder,
        index: NarrativeIndex,
        thresholds: Thresholds,
        max_passages: int = 32,
        window_tokens: int | None = 64,
        lexical: LexicalIndex | None = None,
        fusion: Fusion = PLAIN,
    ) -> None:
        self.embedder = embedder
        self.lexical = lexical
        self.fusion = fusion if lexical is not None else PLAIN
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

    def matches(self, text: EmbeddedText, *, evidence: bool = True) -> list[TextScore]:
        """Every narrative the text reaches the watch tier for, best first."""
        return self.matches_each([text], evidence=evidence)[0]

    def matches_each(self, texts: Sequence[EmbeddedText], *, evidence: bool = True) -> list[list[TextScore]]:
        """`matches` for many texts, scored against the index in one pass."""
        # Coverage adds at most `weight`, so a narrative below floor - weight can reach no tier.
        floor = self._floor() - self.fusion.weight
        candidates = self.index.above_each([text.vectors for text in texts], floor)
        return [
            [self._describe(s, text, evidence) for s in self._fused(found, text) if s.tier is not None]
            for text, found in zip(texts, candidates, strict=True)
        ]

    def top(self, text: EmbeddedText, k: int, *, evidence: bool = True) -> list[TextScore]:
        """The k narratives of best cosine for the text, whatever their tier, best fused score first."""
        return [self._describe(s, text, evidence) for s in self._fused(self.index.top(text.vectors, k), text)]

    def tier(self, narrative_id: str, score: float) -> Tier | None:
        """The tier a score earns for this narrative (its own threshold or the global one)."""
        alert = self.index.alert_threshold(narrative_id, self.thresholds.alert)
        return tier_of(score, alert, self.thresholds.watch)

    def _floor(self) -> float:
        # A per-narrative alert threshold below the global watch threshold lowers the floor.
        return min(self.thresholds.watch, self.index.lowest_threshold(self.thresholds.alert))

    def _fused(self, found: Sequence[Scored], text: EmbeddedText) -> list[_Fused]:
        """Each candidate with its lexical coverage, fused score and tier, best first."""
        coverage = self._coverage(found, text)
        fused = []
        for scored, covered in zip(found, coverage, strict=True):
            score = self.fusion.score(scored.score, covered)
            tier = self.tier(scored.narrative_id, score) if covered >= self.fusion.floor else None
            fused.append(_Fused(scored, score, covered, tier))
        return sorted(fused, key=lambda f: -f.score)

    def _coverage(self, found: Sequence[Scored], text: EmbeddedText) -> list[float]:
        """Lexical coverage of each candidate narrative by its best passage; 0 without a lexical index."""
        coverage = [0.0] * len(found)
        if self.lexical is None:
            return coverage
        by_passage: dict[int, list[int]] = {}
        for position, scored in enumerate(found):
            by_passage.setdefault(scored.passage_index, []).append(position)
        for passage, positions in by_passage.items():
            ids = [found[p].narrative_id for p in positions]
            for p, value in zip(positions, self.lexical.coverage(text.passages[passage], ids), strict=True):
                coverage[p] = float(value)
        return coverage

    def _describe(self, fused: _Fused, text: EmbeddedText, evidence: bool) -> TextScore:
        scored = fused.scored
        passage = text.passages[scored.passage_index]
        sentence = (
            best_sentence(passage, self.index.vectors(scored.narrative_id), self.embedder) if evidence else ""
        )
        return TextScore(
            narrative_id=scored.narrative_id, score=fused.score, tier=fused.tier,
            passage_index=scored.passage_index, passage=passage, evidence=sentence,
            cosine=scored.score, coverage=fused.coverage,
        )


@dataclass(frozen=True)
class _Fused:
    scored: Scored  # the narrative, its cosine and best passage
    score: float
    coverage: float
    tier: Tier | None
