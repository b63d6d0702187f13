"""Scoring texts against narratives: one path for the pipeline, `monitor match` and `monitor eval`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from monitor.matching.embedders import Embedder, Vectors
from monitor.matching.evidence import Wanted, choose_evidence
from monitor.matching.index import NarrativeIndex, Thresholds, tier_of
from monitor.matching.languages import ENGLISH, UNKNOWN, detect, detect_each
from monitor.matching.lexical import LexicalIndex
from monitor.matching.multilingual import DualEmbedder
from monitor.matching.passages import split_passages
from monitor.matching.routes import CrossCalibration, Floats, RoutedIndexes, passage_languages, split_halves
from monitor.types import Narrative, Scored, Tier

PRIMARY = "primary"  # both texts English: the primary model and lexical coverage
MULTILINGUAL = "multilingual"  # any other pair: the multilingual model against its background


def narrative_texts(narrative: Narrative) -> list[str]:
    """The texts embedded for a narrative: the claim, then each example phrasing."""
    return [narrative.title, *narrative.examples]


@dataclass(frozen=True)
class EmbeddedText:
    """An article (or any text) split into passages, with one vector per passage."""

    passages: tuple[str, ...]
    vectors: Vectors
    languages: tuple[str, ...] = ()  # each passage's language, when the scorer routes by it


@dataclass(frozen=True)
class TextScore:
    """How well a text matches one narrative, with the evidence."""

    narrative_id: str
    score: float
    tier: Tier | None  # None: below the watch threshold
    passage_index: int
    passage: str
    evidence: str  # the passage's sentence closest to the narrative; "" when not asked for
    cosine: float = 0.0  # the embedding similarity alone (primary route)
    coverage: float = 0.0  # share of the narrative's weighted terms in the passage (monitor.matching.lexical)
    route: str = PRIMARY  # PRIMARY or MULTILINGUAL (monitor.matching.routes)


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
    """Embeds texts and scores them against every narrative in the index.

    With `routes` (a DualEmbedder's two models) each pair of texts takes the route its
    languages call for (monitor.matching.routes); without, every pair takes the primary one.
    """

    def __init__(
        self,
        embedder: Embedder,
        index: NarrativeIndex,
        thresholds: Thresholds,
        max_passages: int = 32,
        window_tokens: int | None = 64,
        lexical: LexicalIndex | None = None,
        fusion: Fusion = PLAIN,
        routes: RoutedIndexes | None = None,
    ) -> None:
        self.embedder = embedder
        self.lexical = lexical
        self.fusion = fusion if lexical is not None else PLAIN
        self.routes = routes if isinstance(embedder, DualEmbedder) else None
        self.index = routes.every if self.routes is not None and routes is not None else index
        self.thresholds = thresholds
        self.max_passages = max_passages
        self.window_tokens = window_tokens

    @property
    def nbytes(self) -> int:
        """The memory the vectors of its indexes take."""
        if self.routes is None:
            return self.index.nbytes
        return sum(index.nbytes for index in (self.routes.primary, self.routes.foreign, self.routes.every))

    def embed_texts(self, items: Sequence[tuple[str, str]]) -> list[EmbeddedText]:
        """Split each (title, text) into passages and embed them all in one batch."""
        split = [self._split(title, text) for title, text in items]
        languages = [self._languages(passages) for passages in split]
        flat = [p for passages in split for p in passages]
        if isinstance(self.embedder, DualEmbedder) and self.routes is not None:
            # Only English passages are scored on the primary model's half (the routes).
            english = [language == ENGLISH for langs in languages for language in langs]
            vectors = self.embedder.embed_routed(flat, "query", english)
        else:
            vectors = self.embedder.embed(flat, "query")
        bounds = np.cumsum([0] + [len(passages) for passages in split])
        return [
            EmbeddedText(tuple(passages), vectors[bounds[i] : bounds[i + 1]], languages[i])
            for i, passages in enumerate(split)
        ]

    def _split(self, title: str, text: str) -> list[str]:
        window_model: Embedder = self.embedder
        # The primary model's wordpieces fit one Cyrillic sentence in 64 tokens; windows of the
        # multilingual model's own tokens hold two or three (a Russian retelling found its
        # narrative first 88% of the time instead of 71%: bench/crosslingual.py).
        if (isinstance(self.embedder, DualEmbedder) and self.routes is not None
                and detect(f"{title}. {text[:600]}") not in (ENGLISH, UNKNOWN)):
            window_model = self.embedder.multilingual
        return split_passages(title, text, window_model, self.max_passages, self.window_tokens)

    def _languages(self, passages: Sequence[str]) -> tuple[str, ...]:
        return tuple(passage_languages(detect_each(passages))) if self.routes is not None else ()

    def matches(self, text: EmbeddedText, *, evidence: bool = True) -> list[TextScore]:
        """Every narrative the text reaches the watch tier for, best first."""
        return self.matches_each([text], evidence=evidence)[0]

    def matches_each(self, texts: Sequence[EmbeddedText], *, evidence: bool = True) -> list[list[TextScore]]:
        """`matches` for many texts, scored against the index in one pass."""
        found = self._candidates(texts, None)
        return self._described([(text, [f for f in fs if f.tier is not None])
                                for text, fs in zip(texts, found, strict=True)], evidence)

    def top(self, text: EmbeddedText, k: int, *, evidence: bool = True) -> list[TextScore]:
        """The k narratives of best score for the text, whatever their tier, best first."""
        return self._described([(text, self._candidates([text], k)[0][:k])], evidence)[0]

    def tier(self, narrative_id: str, score: float) -> Tier | None:
        """The tier a score earns for this narrative (its own threshold or the global one)."""
        alert = self.index.alert_threshold(narrative_id, self.thresholds.alert)
        return tier_of(score, alert, self.thresholds.watch)

    def _floor(self) -> float:
        # A per-narrative alert threshold below the global watch threshold lowers the floor.
        return min(self.thresholds.watch, self.index.lowest_threshold(self.thresholds.alert))

    def _candidates(self, texts: Sequence[EmbeddedText], k: int | None) -> list[list[_Fused]]:
        """Per text, its narratives best first: those that may reach a tier, or (with k) the k best."""
        if self.routes is None:
            return self._primary(self.index, [t.vectors for t in texts], texts, None, k)
        routes, parts = self.routes, cast(DualEmbedder, self.embedder).parts
        # Texts read back from storage (backfills) come without their languages.
        languages = [t.languages if len(t.languages) == len(t.passages) else self._languages(t.passages)
                     for t in texts]
        english = [np.array([lang == ENGLISH for lang in langs], dtype=bool) for langs in languages]
        halves = [split_halves(t.vectors, parts) for t in texts]
        where = [np.flatnonzero(e) for e in english], [np.flatnonzero(~e) for e in english]
        primary = self._primary(routes.primary, [h[0][e] for h, e in zip(halves, english, strict=True)],
                                texts, where[0], k)
        foreign = self._cross(routes.foreign, [h[1][e] for h, e in zip(halves, english, strict=True)],
                              where[0], k)
        every = self._cross(routes.every, [h[1][~e] for h, e in zip(halves, english, strict=True)],
                            where[1], k)
        return [_best_per_narrative([*a, *b, *c]) for a, b, c in zip(primary, foreign, every, strict=True)]

    def _primary(
        self, index: NarrativeIndex, queries: Sequence[Vectors], texts: Sequence[EmbeddedText],
        where: Sequence[NDArray[np.intp]] | None, k: int | None,
    ) -> list[list[_Fused]]:
        # Coverage adds at most `weight`, so a narrative below floor - weight can reach no tier.
        found = self._found(index, queries, self._floor() - self.fusion.weight, k)
        moved = [_moved(f, where[i] if where is not None else None) for i, f in enumerate(found)]
        return [self._fused(f, text) for f, text in zip(moved, texts, strict=True)]

    def _cross(
        self, index: NarrativeIndex, queries: Sequence[Vectors], where: Sequence[NDArray[np.intp]],
        k: int | None,
    ) -> list[list[_Fused]]:
        found = self._found(index, queries, self._floor(), k)
        return [[_Fused(s, s.score, 0.0, self.tier(s.narrative_id, s.score), MULTILINGUAL)
                 for s in _moved(f, w)] for f, w in zip(found, where, strict=True)]

    @staticmethod
    def _found(
        index: NarrativeIndex, queries: Sequence[Vectors], floor: float, k: int | None
    ) -> list[list[Scored]]:
        if k is None:
            return index.above_each(queries, floor)
        return [index.top(q, k) if len(q) else [] for q in queries]

    def _fused(self, found: Sequence[Scored], text: EmbeddedText) -> list[_Fused]:
        """Each candidate with its lexical coverage, fused score and tier, best first."""
        coverage = self._coverage(found, text)
        fused = []
        for scored, covered in zip(found, coverage, strict=True):
            score = self.fusion.score(scored.score, covered)
            tier = self.tier(scored.narrative_id, score) if covered >= self.fusion.floor else None
            fused.append(_Fused(scored, score, covered, tier, PRIMARY))
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

    def _described(
        self, found: Sequence[tuple[EmbeddedText, list[_Fused]]], evidence: bool
    ) -> list[list[TextScore]]:
        """Each text's candidates as scores; their evidence chosen for the whole batch at once."""
        wanted = [self._wanted(f, text) for text, fs in found for f in fs] if evidence else []
        chosen = iter(choose_evidence(wanted))
        return [[self._describe(f, text, next(chosen) if evidence else "") for f in fs] for text, fs in found]

    def _describe(self, fused: _Fused, text: EmbeddedText, evidence: str) -> TextScore:
        scored = fused.scored
        return TextScore(
            narrative_id=scored.narrative_id, score=fused.score, tier=fused.tier,
            passage_index=scored.passage_index, passage=text.passages[scored.passage_index],
            evidence=evidence, cosine=scored.score if fused.route == PRIMARY else 0.0,
            coverage=fused.coverage, route=fused.route,
        )

    def _wanted(self, fused: _Fused, text: EmbeddedText) -> Wanted:
        """The evidence to find for a match: by the model of the route that matched."""
        narrative_id, passage = fused.scored.narrative_id, text.passages[fused.scored.passage_index]
        if self.routes is None:
            return Wanted(passage, self.index.vectors(narrative_id), self.embedder)
        dual = cast(DualEmbedder, self.embedder)
        if fused.route == PRIMARY:
            return Wanted(passage, self.routes.primary.vectors(narrative_id), dual.primary)
        return Wanted(passage, self.routes.every.vectors(narrative_id), dual.multilingual)


@dataclass(frozen=True)
class _Fused:
    scored: Scored  # the narrative, its route's raw score and best passage
    score: float
    coverage: float
    tier: Tier | None
    route: str


def _moved(found: Sequence[Scored], where: NDArray[np.intp] | None) -> list[Scored]:
    """Scores of a subset of passages, with passage indices back in the whole text's numbering."""
    if where is None:
        return list(found)
    return [Scored(s.narrative_id, s.score, int(where[s.passage_index])) for s in found]


def _best_per_narrative(candidates: Sequence[_Fused]) -> list[_Fused]:
    """The best-scoring route of each narrative, best first (a tier beats none at equal score)."""
    best: dict[str, _Fused] = {}
    for f in sorted(candidates, key=lambda f: (-f.score, f.tier is None)):
        best.setdefault(f.scored.narrative_id, f)
    return list(best.values())


def make_scorer(
    embedder: Embedder,
    ids: Sequence[str],
    texts: Sequence[str],
    matrix: Floats,
    thresholds: Thresholds,
    *,
    overrides: dict[str, float],
    max_passages: int = 32,
    window_tokens: int | None = 64,
    fusion: Fusion = DEFAULT_FUSION,
    background: Vectors | None = None,
    background_languages: Sequence[str] | None = None,
) -> Scorer:
    """The scorer over narrative rows (`ids[i]` owns `texts[i]` and `matrix[i]`).

    With a DualEmbedder the rows are split by language into the two routes, and `background`
    (stored passage vectors of the same model: mostly ordinary news) calibrates the
    multilingual one (monitor.matching.routes).
    """
    lexical = LexicalIndex(ids, texts)
    if not isinstance(embedder, DualEmbedder):
        index = NarrativeIndex.from_arrays(ids, matrix, overrides)
        return Scorer(embedder, index, thresholds, max_passages, window_tokens, lexical, fusion)
    sample = background if background is not None else np.zeros((0, embedder.dimension), dtype=np.float32)
    routes = RoutedIndexes.build(ids, detect_each(texts), matrix, embedder.parts, overrides, sample,
                                 CrossCalibration(), thresholds.watch, background_languages)
    return Scorer(embedder, routes.every, thresholds, max_passages, window_tokens, lexical, fusion, routes)
