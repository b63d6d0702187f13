from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from monitor.matching.embedders import Embedder, HashingEmbedder
from monitor.matching.index import NarrativeIndex, Thresholds, best_sentence, tier_of
from monitor.matching.narrative_files import STARTER_NARRATIVES, read_narratives
from monitor.types import Scored, Tier


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


# Narrative "a" has two rows, given apart from each other; "b" and "c" have one each.
ROWS = [
    ("a", unit(1, 0, 0, 0)),
    ("b", unit(0, 1, 0, 0)),
    ("a", unit(0, 0, 1, 0)),
    ("c", unit(0, 0, 0, 1)),
]
PASSAGES = np.stack([unit(1, 1, 0, 0), unit(0, 0, 3, 1)])  # passage 1 leans to a's second row


def test_ids_in_first_appearance_order() -> None:
    index = NarrativeIndex(ROWS)
    assert index.ids == ("a", "b", "c")
    assert len(index) == 3
    assert index.dimension == 4


def test_multi_row_narrative_takes_its_best_row_and_passage() -> None:
    scores, passages = NarrativeIndex(ROWS).best(PASSAGES)
    assert scores == pytest.approx([3 / np.sqrt(10), 1 / np.sqrt(2), 1 / np.sqrt(10)])
    assert passages.tolist() == [1, 0, 1]
    assert scores.dtype == np.float32


def test_from_arrays_matches_rows() -> None:
    ids = [narrative_id for narrative_id, _ in ROWS]
    matrix = np.stack([vector for _, vector in ROWS])
    by_rows = NarrativeIndex(ROWS).best(PASSAGES)
    by_arrays = NarrativeIndex.from_arrays(ids, matrix).best(PASSAGES)
    assert np.array_equal(by_rows[0], by_arrays[0])
    assert np.array_equal(by_rows[1], by_arrays[1])


def test_vectors_returns_a_narratives_rows() -> None:
    index = NarrativeIndex(ROWS)
    assert np.array_equal(index.vectors("a"), np.stack([ROWS[0][1], ROWS[2][1]]))
    assert np.array_equal(index.vectors("c"), ROWS[3][1][None, :])


def test_top_orders_best_first() -> None:
    index = NarrativeIndex(ROWS)
    top = index.top(PASSAGES, 2)
    assert [(s.narrative_id, s.passage_index) for s in top] == [("a", 1), ("b", 0)]
    assert top[0].score == pytest.approx(3 / np.sqrt(10))
    assert [s.narrative_id for s in index.top(PASSAGES, 10)] == ["a", "b", "c"]
    assert index.top(PASSAGES, 0) == []


def test_ties_keep_index_order() -> None:
    index = NarrativeIndex([("x", unit(1, 0)), ("y", unit(1, 0)), ("z", unit(0, 1))])
    assert [s.narrative_id for s in index.top(np.stack([unit(1, 0)]), 2)] == ["x", "y"]


def test_above_returns_every_narrative_over_the_floor() -> None:
    index = NarrativeIndex(ROWS)
    assert [s.narrative_id for s in index.above(PASSAGES, 0.7)] == ["a", "b"]
    assert index.above(PASSAGES, 0.99) == []
    assert len(index.above(PASSAGES, -1.0)) == 3


def test_no_passages_and_empty_index() -> None:
    index = NarrativeIndex(ROWS)
    none = np.zeros((0, 4), dtype=np.float32)
    assert index.top(none, 3) == [] and index.above(none, -1.0) == []
    scores, passages = index.best(none)
    assert np.isneginf(scores).all() and (passages == -1).all()
    empty = NarrativeIndex([])
    assert len(empty) == 0 and empty.top(PASSAGES, 5) == [] and empty.above(PASSAGES, 0.0) == []


def test_mismatched_shapes_raise_value_error() -> None:
    index = NarrativeIndex(ROWS)
    with pytest.raises(ValueError, match=r"dimension 3.*4"):
        index.best(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="passages, dimension"):
        index.best(np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="2 narrative ids"):
        NarrativeIndex.from_arrays(["a", "b"], np.ones((3, 4), dtype=np.float32))


def test_per_narrative_thresholds() -> None:
    index = NarrativeIndex(ROWS, thresholds={"a": 0.9, "c": 0.4, "gone": 0.1})
    assert index.alert_threshold("a", 0.75) == 0.9
    assert index.alert_threshold("b", 0.75) == 0.75
    assert index.lowest_threshold(0.75) == 0.4  # "gone" is not in the index
    assert NarrativeIndex(ROWS).lowest_threshold(0.75) == 0.75


@pytest.mark.parametrize(
    ("score", "alert", "watch", "tier"),
    [
        (0.80, 0.75, 0.60, Tier.ALERT),
        (0.75, 0.75, 0.60, Tier.ALERT),
        (0.70, 0.75, 0.60, Tier.WATCH),
        (0.60, 0.75, 0.60, Tier.WATCH),
        (0.59, 0.75, 0.60, None),
        (0.55, 0.50, 0.60, Tier.ALERT),  # a narrative tuned below the watch line alerts
        (0.45, 0.50, 0.60, None),
    ],
)
def test_tier_of(score: float, alert: float, watch: float, tier: Tier | None) -> None:
    assert tier_of(score, alert, watch) is tier


def test_thresholds_need_watch_not_above_alert() -> None:
    assert Thresholds(alert=0.75, watch=0.6).watch == 0.6
    assert tier_of(0.6, 0.6, 0.6) is Tier.ALERT  # equal thresholds: no watch tier, no crash
    with pytest.raises(ValueError, match="not be above"):
        Thresholds(alert=0.6, watch=0.7)


def test_best_sentence_picks_the_closest_sentence() -> None:
    embedder = HashingEmbedder()
    narrative = embedder.embed(["vaccines contain microchips", "5G towers spread the virus"], "passage")
    passage = "The minister spoke on Monday. She denied that 5G towers spread the virus. Markets were calm."
    assert best_sentence(passage, narrative, embedder) == "She denied that 5G towers spread the virus."
    assert best_sentence("Only one sentence here", narrative, embedder) == "Only one sentence here"
    with pytest.raises(ValueError, match="dimension 3"):
        best_sentence(passage, np.ones((1, 3), dtype=np.float32), embedder)


def test_hashing_embedder_end_to_end() -> None:
    embedder = HashingEmbedder()
    claims = {"nato": "NATO is surrounding Russia with military bases", "vax": "Vaccines contain microchips"}
    vectors = embedder.embed(list(claims.values()), "passage")
    index = NarrativeIndex.from_arrays(list(claims), vectors)
    article = embedder.embed(["Weather was fine.", "Some say NATO is surrounding Russia."], "query")
    [first, second] = index.top(article, 2)
    assert (first.narrative_id, first.passage_index) == ("nato", 1)
    assert first.score > 0.5 > second.score


def naive_best(
    ids: list[str], matrix: np.ndarray, passages: np.ndarray, narrative_id: str
) -> tuple[float, int]:
    """The reference: loop over the narrative's rows and every passage."""
    best = (-np.inf, -1)
    for row, row_id in enumerate(ids):
        if row_id == narrative_id:
            for p, passage in enumerate(passages):
                score = float(matrix[row] @ passage)
                if score > best[0]:
                    best = (score, p)
    return best


def test_large_random_index_agrees_with_a_naive_loop() -> None:
    rng = np.random.default_rng(7)
    narratives = [f"n{i}" for i in range(20_000)]
    ids = [narrative for narrative in narratives for _ in range(int(rng.integers(1, 4)))]
    rng.shuffle(ids)  # rows of one narrative scattered, as a database might return them
    matrix = rng.standard_normal((len(ids), 32)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    passages = rng.standard_normal((6, 32)).astype(np.float32)
    passages /= np.linalg.norm(passages, axis=1, keepdims=True)

    index = NarrativeIndex.from_arrays(ids, matrix)
    scores, where = index.best(passages)
    assert len(index) == 20_000
    position = {narrative_id: i for i, narrative_id in enumerate(index.ids)}
    for narrative_id in rng.choice(narratives, size=40, replace=False).tolist():
        score, passage = naive_best(ids, matrix, passages, narrative_id)
        # The index keeps float16 rows: a cosine moves by well under 1e-3.
        assert scores[position[narrative_id]] == pytest.approx(score, abs=1e-3)
        assert where[position[narrative_id]] == passage

    top = index.top(passages, 5)
    order = np.argsort(-scores, kind="stable")[:5]
    assert top == [Scored(index.ids[i], float(scores[i]), int(where[i])) for i in order]
    assert [s.narrative_id for s in index.above(passages, top[-1].score)] == [s.narrative_id for s in top]


def random_index(rng: np.random.Generator, narratives: int, dimension: int) -> NarrativeIndex:
    """Narratives with one to three rows each, rows scattered as a database might return them."""
    ids = [f"n{i}" for i in range(narratives) for _ in range(int(rng.integers(1, 4)))]
    rng.shuffle(ids)
    matrix = rng.standard_normal((len(ids), dimension)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return NarrativeIndex.from_arrays(ids, matrix)


def same_matches(got: list[Scored], want: list[Scored]) -> bool:
    """Equal but for the last bits of the scores: BLAS sums in an order that depends on shapes."""
    return [(s.narrative_id, s.passage_index) for s in got] == [
        (s.narrative_id, s.passage_index) for s in want
    ] and [s.score for s in got] == pytest.approx([s.score for s in want], abs=1e-5)


def test_above_each_agrees_with_above_text_by_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.matching.index._BLOCK_BYTES", 4 * 64 * 70)  # blocks split narratives
    monkeypatch.setattr("monitor.matching.index._MIN_BLOCK", 1)
    rng = np.random.default_rng(3)
    index = random_index(rng, 500, 16)
    texts = [rng.standard_normal((n, 16)).astype(np.float32) for n in (3, 0, 1, 32, 7, 21)]
    texts = [text / np.linalg.norm(text, axis=1, keepdims=True) for text in texts]
    for floor in (-1.0, 0.3, 0.6, 2.0):
        each = index.above_each(texts, floor)
        assert len(each) == len(texts) and each[1] == []
        for got, text in zip(each, texts, strict=True):
            assert same_matches(got, index.above(text, floor))
    scores, where = index.best(texts[3])
    position = {narrative_id: i for i, narrative_id in enumerate(index.ids)}
    for scored in index.above(texts[3], -np.inf):
        i = position[scored.narrative_id]
        assert (scored.score, scored.passage_index) == (float(scores[i]), int(where[i]))


def test_above_each_with_nothing_to_score() -> None:
    index = NarrativeIndex(ROWS)
    assert index.above_each([], 0.5) == []
    assert index.above_each([np.zeros((0, 4), dtype=np.float32)], -1.0) == [[]]
    assert NarrativeIndex([]).above_each([PASSAGES, PASSAGES], 0.0) == [[], []]
    with pytest.raises(ValueError, match=r"dimension 3.*4"):
        index.above_each([PASSAGES, np.ones((1, 3), dtype=np.float32)], 0.5)


def test_ties_between_passages_and_rows_name_the_first() -> None:
    index = NarrativeIndex([("a", unit(1, 0)), ("a", unit(1, 0)), ("b", unit(0, 1))])
    passages = np.stack([unit(0, 1), unit(1, 0), unit(1, 0)])
    assert index.above(passages, 0.9) == [Scored("a", 1.0, 1), Scored("b", 1.0, 0)]
    assert index.above_each([passages[1:], passages], 0.9) == [
        [Scored("a", 1.0, 0)], [Scored("a", 1.0, 1), Scored("b", 1.0, 0)]
    ]


def test_index_holds_half_the_memory_of_its_float32_rows() -> None:
    rng = np.random.default_rng(11)
    ids = [f"n{i // 2}" for i in range(4000)]  # grouped, as the database returns them
    matrix = rng.standard_normal((len(ids), 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = NarrativeIndex.from_arrays(ids, matrix)
    assert index.nbytes == matrix.nbytes // 2
    assert index.vectors("n3").dtype == np.float32
    assert np.abs(index.vectors("n3") - matrix[6:8]).max() < 1e-3
    # Rows read in float16 (as the stage loads them) are kept as they are, not copied.
    half = matrix.astype(np.float16)
    tracemalloc.start()
    NarrativeIndex.from_arrays(ids, half)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.6 * half.nbytes  # a copy would be all of it; the finiteness mask is a byte a number


def test_float16_scores_equal_float32_ones_within_1e3_on_real_vectors(default_embedder: Embedder) -> None:
    claims = [n.title for n in read_narratives(STARTER_NARRATIVES).narratives]
    news = [
        "NATO is moving more troops and bases closer to the Russian border, officials said.",
        "The central bank kept interest rates unchanged on Tuesday.",
        "Some claim the vaccines contain microchips that track the people who receive them.",
        "Officials said the flood barriers held through the night.",
        "Biolabs in Ukraine are said to be developing weapons, a spokesman claimed.",
    ]
    rows, passages = default_embedder.embed(claims, "passage"), default_embedder.embed(news, "query")
    scores, where = NarrativeIndex.from_arrays(claims, rows).best(passages)
    exact = passages @ rows.T  # float32 throughout, as the index was before
    assert np.abs(scores - exact.max(axis=0)).max() < 1e-3
    assert where.tolist() == exact.argmax(axis=0).tolist()


def test_a_corrupt_vector_matches_nothing_and_keeps_the_others_aligned() -> None:
    rows = [("a", unit(1, 0, 0, 0)), ("b", np.full(4, np.nan, dtype=np.float32)), ("c", unit(0, 0, 0, 1)),
            ("c", unit(0, 0, 1, 0))]
    index = NarrativeIndex(rows)
    scores, _ = index.best(np.stack([unit(1, 0, 0, 1)]))
    assert scores == pytest.approx([1 / np.sqrt(2), 0.0, 1 / np.sqrt(2)])
    assert index.top(np.stack([unit(0, 0, 0, 1)]), 3)[0].narrative_id == "c"
    with_nan = np.stack([unit(0, 0, 0, 1), np.full(4, np.nan, dtype=np.float32)])
    assert [s.narrative_id for s in index.above(with_nan, 0.5)] == ["c"]
