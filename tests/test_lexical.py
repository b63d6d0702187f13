"""Lexical coverage and its fusion with the cosine in the scorer."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.matching.embedders import HashingEmbedder
from monitor.matching.index import NarrativeIndex, Thresholds
from monitor.matching.lexical import LexicalIndex
from monitor.matching.scoring import PLAIN, EmbeddedText, Fusion, Scorer
from monitor.types import Tier


def test_coverage_is_the_weighted_share_of_a_narratives_terms() -> None:
    index = LexicalIndex(["whales", "votes"], ["Whales trapped in an underwater jail", "Dead people voted"])
    covered = index.coverage("Rescuers freed whales stranded in the harbour", ["whales", "votes"])
    assert 0 < covered[0] < 1  # "whales" only: not "trapped", "underwater", "jail"
    assert covered[1] == 0
    full = index.coverage("A jail for whales, trapped underwater", ["whales"])
    assert full[0] == pytest.approx(1.0)


def test_rare_terms_weigh_more_than_terms_many_narratives_share() -> None:
    texts = ["Photograph shows a shark on a highway", "Photograph shows a flooded airport",
             "Photograph shows a burning church"]
    index = LexicalIndex(["shark", "airport", "church"], texts)
    common = index.coverage("a photograph was shared", ["shark"])[0]
    rare = index.coverage("a shark", ["shark"])[0]
    assert rare > common > 0


def test_a_narrative_is_covered_by_its_best_text() -> None:
    index = LexicalIndex(["n", "n", "m"], ["Vaccines contain microchips", "Microchips hidden in vaccines",
                                           "Vaccines alter human DNA"])
    # The second phrasing is repeated whole; the first only in part (no "contain").
    assert index.coverage("vaccines microchips hidden", ["n"])[0] == pytest.approx(1.0)
    assert 0 < index.coverage("vaccines with microchips", ["n", "m"])[1] < 1
    assert index.coverage("they contain microchips", ["n"])[0] > index.coverage("microchips", ["n"])[0]


def test_narratives_are_answered_in_the_order_asked() -> None:
    index = LexicalIndex(["a", "b", "a"], ["Moon landing staged", "Earth is flat really",
                                           "Apollo faked in a studio"])
    assert index.coverage("the flat earth, really", ["b", "a"]).tolist()[0] == pytest.approx(1.0)
    assert index.coverage("apollo faked in a studio", ["b", "a"]).tolist() == [0.0, pytest.approx(1.0)]


def test_stop_words_and_case_are_ignored() -> None:
    index = LexicalIndex(["n"], ["The Moon landing was staged"])
    assert index.coverage("the THE the", ["n"])[0] == 0
    assert index.coverage("MOON LANDING STAGED", ["n"])[0] == pytest.approx(1.0)


def test_narratives_without_any_term_never_cover() -> None:
    index = LexicalIndex(["a"], ["the of and"])
    assert index.coverage("anything at all", ["a"]).tolist() == [0.0]
    assert index.coverage("text", []).shape == (0,)


def test_mismatched_ids_and_texts_are_refused() -> None:
    with pytest.raises(ValueError, match="2 narrative ids for 1 texts"):
        LexicalIndex(["a", "b"], ["one"])


def _scorer(fusion: Fusion, lexical: bool = True) -> tuple[Scorer, EmbeddedText]:
    # Two narratives at the same cosine (0.6); only "echo" shares its words with the passage.
    vectors = np.eye(3, dtype=np.float32)
    index = NarrativeIndex.from_arrays(["echo", "other"], vectors[:2])
    texts = ["Ministers secretly sold the harbour", "Aliens built the pyramids"]
    passage = np.array([[0.6, 0.6, 0.529]], dtype=np.float32)
    text = EmbeddedText(("Ministers sold the harbour, papers show",), passage)
    lexical_index = LexicalIndex(["echo", "other"], texts) if lexical else None
    scorer = Scorer(HashingEmbedder(3), index, Thresholds(0.7, 0.55), lexical=lexical_index, fusion=fusion)
    return scorer, text


def test_fusion_lifts_the_narrative_the_passage_repeats() -> None:
    scorer, text = _scorer(Fusion(weight=0.2, floor=0.1))
    found = scorer.matches(text, evidence=False)
    assert [s.narrative_id for s in found] == ["echo"]  # "other" covers nothing: no tier
    echo = found[0]
    assert echo.cosine == pytest.approx(0.6, abs=1e-3)
    assert echo.coverage == pytest.approx(0.75)  # 3 of ministers, secretly, sold, harbour
    assert echo.score == pytest.approx(0.6 + 0.2 * 0.75, abs=1e-3)
    assert echo.tier is Tier.ALERT


def test_coverage_below_the_floor_reaches_no_tier_but_still_ranks() -> None:
    scorer, text = _scorer(Fusion(weight=0.2, floor=0.1))
    ranked = scorer.top(text, 2, evidence=False)
    assert [(s.narrative_id, s.tier) for s in ranked] == [("echo", Tier.ALERT), ("other", None)]


def test_plain_cosine_without_a_lexical_index() -> None:
    scorer, text = _scorer(Fusion(weight=0.2, floor=0.1), lexical=False)
    assert scorer.fusion == PLAIN
    found = scorer.matches(text, evidence=False)
    assert {s.narrative_id: s.tier for s in found} == {"echo": Tier.WATCH, "other": Tier.WATCH}


def test_matches_each_equals_matches_one_by_one() -> None:
    scorer, text = _scorer(Fusion(weight=0.2, floor=0.1))
    other = EmbeddedText(("Aliens built the pyramids",), np.array([[0.0, 0.8, 0.6]], dtype=np.float32))
    together = scorer.matches_each([text, other], evidence=False)
    assert together == [scorer.matches(text, evidence=False), scorer.matches(other, evidence=False)]
    assert [s.narrative_id for s in together[1]] == ["other"]


def test_a_short_claim_of_common_words_is_not_fully_covered_by_any_headline() -> None:
    texts = ["Ukraine is part of Russia", "Ukraine shelled its own city of Donetsk with cluster munitions",
             "Western sanctions against Russia have collapsed the Latvian dairy industry"]
    index = LexicalIndex(["part", "shelled", "dairy"], texts)
    headline = index.coverage("Russia-Ukraine war, part two: what we know", ["part"])[0]
    assert 0 < headline < 1  # all three of its words, yet it weighs less than half the median text
    repeated = index.coverage("Ukraine shelled its own city, Donetsk, with cluster munitions", ["shelled"])[0]
    assert repeated == pytest.approx(1.0)
