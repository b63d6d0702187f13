from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.errors import EvalDataError
from monitor.matching.embedders import HashingEmbedder, SentenceTransformerEmbedder
from monitor.matching.evaluation import (
    EvalResult,
    EvalSet,
    QueryOutcome,
    build_scorer,
    evaluate,
    load_checkthat,
    load_jsonl_set,
    ranking_metrics,
    sweep,
    threshold_metrics,
)
from monitor.matching.index import Thresholds
from monitor.types import Tier

DATA = Path(__file__).parent / "data" / "eval"
CHECKTHAT = DATA / "checkthat"
SHARED_CHECKTHAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "checkthat2020"


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CHECKTHAT, tmp_path / "checkthat"))


# --- metrics ---------------------------------------------------------------------------------


def test_ranking_metrics_by_hand() -> None:
    rankings = {"q1": ["a", "b", "c"], "q2": ["x", "y", "b", "z", "w", "v"], "q3": ["m"], "neg": ["a"]}
    qrels = {"q1": frozenset("a"), "q2": frozenset({"b", "v"}), "q3": frozenset("n"), "neg": frozenset()}
    # q1: everything 1. q2: b at rank 3, v at rank 6: AP@5 = (1/3) / 2, RR = 1/3, R@5 = 1/2, R@10 = 1.
    # q3: nothing found. neg has no relevant narrative and is not averaged.
    assert ranking_metrics(rankings, qrels) == pytest.approx({
        "MAP@5": (1 + 1 / 6) / 3, "MRR": (1 + 1 / 3) / 3, "P@1": 1 / 3,
        "Recall@1": 1 / 3, "Recall@5": 1.5 / 3, "Recall@10": 2 / 3,
    })


def test_average_precision_counts_precision_at_each_hit() -> None:
    metrics = ranking_metrics({"q": ["a", "b", "c"]}, {"q": frozenset({"a", "c"})})
    assert metrics["MAP@5"] == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_divides_by_at_most_five() -> None:
    relevant = frozenset(str(i) for i in range(7))
    metrics = ranking_metrics({"q": [str(i) for i in range(10)]}, {"q": relevant})
    assert metrics["MAP@5"] == 1.0
    assert metrics["Recall@5"] == pytest.approx(5 / 7)


def test_a_judged_query_without_ranking_scores_zero() -> None:
    metrics = ranking_metrics({"q1": ["a"]}, {"q1": frozenset("a"), "q2": frozenset("b")})
    assert metrics["MAP@5"] == metrics["MRR"] == 0.5


def test_threshold_metrics_count_every_pair_raised_on_negatives_as_false() -> None:
    raised = {
        "q1": [("a", Tier.ALERT), ("b", Tier.WATCH)],
        "q2": [("x", Tier.ALERT), ("b", Tier.WATCH)],
        "q3": [],
        "neg": [("a", Tier.ALERT), ("c", Tier.WATCH)],
        "unlabelled": [("c", Tier.ALERT)],
    }
    qrels = {"q1": frozenset("a"), "q2": frozenset("b"), "q3": frozenset("c"), "neg": frozenset()}
    assert threshold_metrics(raised, qrels) == pytest.approx({
        "alert_recall": 1 / 3, "alert_precision": 1 / 4, "alert_pairs": 4,  # q1:a right; q2:x, neg:a, c wrong
        "flag_recall": 2 / 3, "flag_precision": 2 / 7, "flag_pairs": 7,
    })


def test_threshold_metrics_with_nothing_raised() -> None:
    metrics = threshold_metrics({}, {"q": frozenset("a")})
    assert metrics["alert_recall"] == metrics["alert_precision"] == metrics["flag_pairs"] == 0


def test_sweep_on_top_scores() -> None:
    outcomes = (
        QueryOutcome("q1", frozenset("a"), (("a", 0.9), ("b", 0.6)), ()),
        QueryOutcome("q2", frozenset("b"), (("x", 0.7), ("b", 0.65)), ()),
        QueryOutcome("neg", frozenset(), (("c", 0.55),), ()),
    )
    result = EvalResult({}, Thresholds(0.6, 0.5), 4, 3, 2, outcomes, 0.0)
    low, middle, high, none = sweep(result, [0.5, 0.65, 0.8, 0.95])
    # 0.5: top-1 alerts on q1 (right), q2 and neg (wrong); the top-k pairs a, b, x, b, c hold 2 right.
    # Best non-relevant scores: q1 b 0.6, q2 x 0.7, neg c 0.55.
    assert low == pytest.approx((0.5, 1 / 2, 1 / 3, 1.0, 2 / 5, 5, 1.0))
    assert middle.stray_rate == pytest.approx(1 / 3)  # only q2's x
    assert high == pytest.approx((0.8, 1 / 2, 1.0, 1 / 2, 1.0, 1, 0.0))
    assert none == (0.95, 0.0, 0.0, 0.0, 0.0, 0, 0.0)


# --- loaders ---------------------------------------------------------------------------------


def test_load_checkthat_fixture() -> None:
    evalset = load_checkthat(CHECKTHAT)
    claims = {n.id: n for n in evalset.narratives}
    assert list(claims) == ["0", "1", "2", "3"]
    assert claims["0"].examples == ("Was the Moon Landing Filmed in a Studio?",)
    assert claims["1"].title == 'A "miracle cure" made from garlic stops the virus.'
    assert claims["2"].title == "Wind turbines cause cancer in nearby residents."
    assert claims["2"].examples == claims["3"].examples == ()
    assert [q for q, _ in evalset.queries] == ["10", "11", "12"]
    assert evalset.queries[1][1].startswith('Grandma swears a "miracle cure"')
    assert evalset.qrels == {"10": frozenset("0"), "11": frozenset({"1", "3"})}


def test_missing_split_names_the_directory() -> None:
    with pytest.raises(EvalDataError) as caught:
        load_checkthat(CHECKTHAT, "test")
    assert caught.value.path == str(CHECKTHAT / "test")
    assert "no such directory" in str(caught.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "dev" / "tweet-vclaim-pairs.qrels").unlink()
    with pytest.raises(EvalDataError, match=r"tweet-vclaim-pairs\.qrels: no such file"):
        load_checkthat(root)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("dev/tweet-vclaim-pairs.qrels", "10 0 0 1\n11 0 1\n", r"qrels:2: expected 'query_id 0 claim_id"),
        ("dev/tweet-vclaim-pairs.qrels", "10 0 0 1\n10 0 99 1\n", r"query 10: unknown narrative id\(s\) 99"),
        ("dev/tweet-vclaim-pairs.qrels", "77 0 0 1\n", r"query 77: unknown query id"),
        ("dev/tweets.queries.tsv", "\ttweet_content\n10\ta\textra\n", r"tsv:2: 3 fields, expected 2"),
    ],
)
def test_malformed_checkthat_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    root = _copy(tmp_path)
    (root / name).write_text(text, encoding="utf-8")
    with pytest.raises(EvalDataError, match=message):
        load_checkthat(root)


def test_a_qrels_line_with_relevance_zero_is_not_a_label(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "dev" / "tweet-vclaim-pairs.qrels").write_text("10 0 0 0\n11 0 1 1\n", encoding="utf-8")
    assert load_checkthat(root).qrels == {"11": frozenset("1")}


def test_load_jsonl_set() -> None:
    evalset = load_jsonl_set(DATA / "narratives.jsonl", DATA / "queries.jsonl")
    assert [n.id for n in evalset.narratives] == ["bucha-staged", "biolabs", "chemtrails"]
    assert [q for q, _ in evalset.queries] == ["1", "q2", "q3"]
    assert evalset.qrels == {
        "1": frozenset({"bucha-staged"}), "q2": frozenset({"biolabs"}), "q3": frozenset()}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "text": "t", "narratives": ["no"]}', r"queries\.jsonl: query x: unknown narrative id"),
        ('{"id": "x", "text": "t"}', r"queries\.jsonl:2: expected \"narratives\""),
        ('{"id": "x", "text": "", "narratives": []}', r"queries\.jsonl:2: expected \{"),
        ('{"id": "q", "text": "t", "narratives": []}', r"queries\.jsonl:2: duplicate query id 'q'"),
        ('{"id": "x",', r"queries\.jsonl:2: not valid JSON"),
    ],
)
def test_malformed_queries(tmp_path: Path, line: str, message: str) -> None:
    queries = tmp_path / "queries.jsonl"
    first = '{"id": "q", "text": "t", "narratives": ["biolabs"]}'
    queries.write_text(f"{first}\n{line}\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match=message):
        load_jsonl_set(DATA / "narratives.jsonl", queries)


def test_a_narrative_file_with_problems_is_refused(tmp_path: Path) -> None:
    narratives = tmp_path / "narratives.jsonl"
    narratives.write_text('{"id": "a", "title": "A claim."}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match=r"narratives\.jsonl:2: title: missing"):
        load_jsonl_set(narratives, DATA / "queries.jsonl")
    with pytest.raises(EvalDataError, match=r"missing\.csv: cannot read the file"):
        load_jsonl_set(tmp_path / "missing.csv", DATA / "queries.jsonl")


# --- evaluate --------------------------------------------------------------------------------


def _evaluate_hashing(evalset: EvalSet, thresholds: Thresholds) -> EvalResult:
    scorer = build_scorer(HashingEmbedder(), evalset.narratives, thresholds)
    return evaluate(scorer, evalset, k=len(evalset.narratives), batch=2)


def test_evaluate_checkthat_fixture_with_hashing_embedder() -> None:
    result = _evaluate_hashing(load_checkthat(CHECKTHAT), Thresholds(0.4, 0.2))
    assert (result.narratives, result.queries, result.positives) == (4, 3, 2)
    assert result.metrics["P@1"] == 1.0
    assert result.metrics["Recall@5"] == 1.0
    assert result.metrics["alert_recall"] == 1.0
    by_id = {o.query_id: o for o in result.outcomes}
    assert [n for n, _ in by_id["10"].top][:1] == ["0"]
    assert by_id["12"].raised == ()  # the negative shares no words worth a watch
    # One global threshold: the pair columns of a sweep at the alert threshold are the alert metrics.
    row = sweep(result, [0.4])[0]
    assert (row.pair_recall, row.pair_precision) == (
        result.metrics["alert_recall"], result.metrics["alert_precision"])


def test_evaluate_respects_a_narratives_own_threshold() -> None:
    result = _evaluate_hashing(load_jsonl_set(DATA / "narratives.jsonl", DATA / "queries.jsonl"),
                               Thresholds(0.3, 0.2))
    by_id = {o.query_id: o for o in result.outcomes}
    biolabs = dict(by_id["q2"].top)["biolabs"]
    assert 0.3 <= biolabs < 0.9
    assert by_id["q2"].raised == (("biolabs", Tier.WATCH),)  # its own alert threshold is 0.9
    assert by_id["1"].raised[0] == ("bucha-staged", Tier.ALERT)
    assert result.metrics["alert_recall"] == 0.5


def test_evaluate_with_the_default_model() -> None:
    evalset = load_checkthat(CHECKTHAT)
    scorer = build_scorer(SentenceTransformerEmbedder(), evalset.narratives, Thresholds(0.6, 0.5))
    result = evaluate(scorer, evalset)
    assert result.metrics["P@1"] == 1.0
    assert result.metrics["MAP@5"] > 0.7
    assert {o.query_id: o.raised for o in result.outcomes}["12"] == ()  # the weather raises nothing


@pytest.mark.corpus
@pytest.mark.skipif(not SHARED_CHECKTHAT.is_dir(), reason="../shared/data/checkthat2020 is absent")
@pytest.mark.parametrize(("split", "queries", "pairs"), [("dev", 197, 198), ("train", 800, 801)])
def test_shared_checkthat_loads(split: str, queries: int, pairs: int) -> None:
    evalset = load_checkthat(SHARED_CHECKTHAT, split)
    assert len(evalset.narratives) == 10_375  # the data README says 10,373; the file holds 10,375
    assert len({n.id for n in evalset.narratives}) == 10_375
    assert len(evalset.queries) == queries
    assert all(evalset.qrels.get(query_id) for query_id, _text in evalset.queries)
    assert sum(len(ids) for ids in evalset.qrels.values()) == pairs
