"""Articles in other languages than the narrative: language detection, the multilingual route,
and the matching stage with both real models (MiniLM and the multilingual USE) on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from test_matching import store_article

from monitor.matching import index as index_module
from monitor.matching import routes as routes_module
from monitor.matching.embedders import Embedder, Kind, Vectors
from monitor.matching.index import NarrativeIndex, Thresholds
from monitor.matching.languages import UNKNOWN, detect
from monitor.matching.multilingual import DualEmbedder, UseEmbedder
from monitor.matching.narrative_files import STARTER_NARRATIVES, read_narratives
from monitor.matching.routes import CrossCalibration, passage_languages
from monitor.matching.scoring import MULTILINGUAL, PRIMARY, EmbeddedText, make_scorer, narrative_texts
from monitor.matching.stage import MatchStage, make_embedder
from monitor.types import Feed, Narrative, Tier
from storage.narratives_repo import MatchStore
from storage.repo import Repository

COLOUR = Narrative(
    id="colour-revolution-kz",
    title="The riots in Kazakhstan were a colour revolution organised and paid for by the West.",
    summary="Western NGOs and intelligence services are said to have trained and paid the crowds in Almaty.",
)
VACCINES = Narrative(
    id="vaccines-kill",
    title="Western vaccines are experimental poison that kills thousands of healthy people.",
)
RETELLINGS = {
    "ru": ("Беспорядки в Алма-Ате — цветная революция",
           "Эксперты уверены, что протесты в Казахстане были организованы из-за рубежа. "
           "Западные НКО годами готовили почву для переворота, а митингующим платили."),
    "de": ("Unruhen in Almaty: eine Farbrevolution",
           "Die Proteste in Kasachstan wurden nach Ansicht von Experten aus dem Ausland gesteuert. "
           "Westliche NGOs haben den Boden für einen Putsch bereitet und die Demonstranten bezahlt."),
    "fr": ("Émeutes à Almaty : une révolution de couleur",
           "Selon des analystes, les émeutes au Kazakhstan ont été orchestrées depuis l'étranger. "
           "Des ONG occidentales ont préparé le terrain pour un coup d'État et payé les manifestants."),
    "es": ("Disturbios en Almaty: una revolución de colores",
           "Según analistas, las protestas en Kazajistán fueron orquestadas desde el extranjero. "
           "Las ONG occidentales prepararon el terreno para un golpe y pagaron a los manifestantes."),
    "uk": ("Заворушення в Алмати — кольорова революція",
           "Експерти впевнені, що протести в Казахстані організували з-за кордону. "
           "Західні НУО роками готували ґрунт для перевороту, а мітингувальникам платили."),
}
RUSSIAN_WEATHER = ("Погода в Москве на выходные",
                   "Завтра в Москве ожидается облачная погода и небольшой снег, температура около минус "
                   "пяти градусов. Ветер северо-западный, умеренный. В воскресенье потеплеет до нуля.")
UKRAINIAN_WEATHER = ("Погода в Києві на вихідні",
                     "Завтра в Києві очікується хмарна погода і невеликий сніг, температура близько мінус "
                     "п'яти градусів. Вітер північно-західний, помірний. У неділю потеплішає до нуля.")


@pytest.mark.parametrize(("text", "language"), [
    ("The protests in Almaty were organised by Western foundations, officials claimed.", "en"),
    ("Протесты в Алма-Ате организовали западные фонды, заявили чиновники.", "ru"),
    ("Протести в Алмати організували західні фонди, заявили посадовці.", "uk"),
    ("Die Proteste in Almaty wurden von westlichen Stiftungen organisiert.", "de"),
    ("Les manifestations à Almaty ont été organisées par des fondations occidentales.", "fr"),
    ("Las protestas en Almaty fueron organizadas por fundaciones occidentales.", "es"),
])
def test_language_of_a_news_sentence(text: str, language: str) -> None:
    assert detect(text) == language


def test_too_little_text_has_no_language_and_takes_the_articles() -> None:
    assert detect("NATO, 2024") == UNKNOWN
    assert passage_languages(["ru", UNKNOWN, "ru", "en"]) == ["ru", "ru", "ru", "en"]
    assert passage_languages([UNKNOWN]) == ["en"]


def test_background_is_the_prior_until_there_is_news_to_measure() -> None:
    calibration = CrossCalibration()
    rows = np.eye(3, dtype=np.float32)
    mean, sd = calibration.background(rows, np.zeros((0, 3), dtype=np.float32))
    assert mean.tolist() == pytest.approx([calibration.prior_mean] * 3)
    assert sd.tolist() == pytest.approx([calibration.prior_sd] * 3)
    # 6 standard deviations above the background is the default alert threshold, 5 the watch one.
    a, b = calibration.row_affine(rows, np.zeros((0, 3), dtype=np.float32))
    assert float(a[0] * (calibration.prior_mean + 6 * calibration.prior_sd) + b[0]) == pytest.approx(0.70)
    assert float(a[0] * (calibration.prior_mean + 5 * calibration.prior_sd) + b[0]) == pytest.approx(0.58)


def test_a_text_that_resembles_all_news_needs_a_higher_cosine() -> None:
    calibration = CrossCalibration(prior_weight=1.0)
    hub, specific = np.array([1.0, 0.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32)
    news = np.array([[0.8, 0.6]] * 50 + [[0.6, 0.8]] * 50 + [[1.0, 0.0]] * 100, dtype=np.float32)
    news /= np.linalg.norm(news, axis=1, keepdims=True)
    a, b = calibration.row_affine(np.stack([hub, specific]), news)
    cosine = 0.9
    assert a[0] * cosine + b[0] < a[1] * cosine + b[1]


def test_the_bar_rises_with_the_number_of_narrative_texts() -> None:
    calibration = CrossCalibration()
    rng = np.random.default_rng(7)
    few, many = (rng.normal(size=(n, 16)).astype(np.float32) for n in (30, 20_000))
    for rows in (few, many):
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    empty = np.zeros((0, 16), dtype=np.float32)
    assert calibration.raised(few, empty, 0.58)[2] == 0.0
    assert calibration.raised(many, empty, 0.58)[2] == pytest.approx(0.12 * 1.85, abs=0.01)
    # With a sample of ordinary passages, all but 0.5% of them stay below the watch threshold.
    sample = rng.normal(size=(1000, 16)).astype(np.float32)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    scale, offset, _rise = calibration.raised(many, sample, 0.58)
    best = ((sample @ many.T) * scale + offset).max(axis=1)
    assert np.quantile(best, 0.995) <= 0.58 + 1e-4


def test_index_calibration_scores_each_row_on_its_own_scale() -> None:
    rows = np.eye(2, dtype=np.float32)
    index = NarrativeIndex.from_arrays(["a", "b"], rows, calibration=([1.0, 2.0], [0.0, -0.5]))
    found = index.above(np.array([[0.6, 0.8]], dtype=np.float32), 0.0)
    assert [(s.narrative_id, round(s.score, 3)) for s in found] == [("b", 1.1), ("a", 0.6)]
    with pytest.raises(ValueError, match="positive"):
        NarrativeIndex.from_arrays(["a"], rows[:1], calibration=([0.0], [0.0]))


@pytest.fixture(scope="module")
def dual() -> DualEmbedder:
    # torch, as before this backend existed: no export is written outside tmp_path
    embedder = make_embedder("all-MiniLM-L6-v2", None, None, "use-multilingual-v3", backend="torch")
    assert isinstance(embedder, DualEmbedder)
    return embedder


def test_dual_vectors_hold_both_models_and_stay_unit(dual: DualEmbedder) -> None:
    vectors = dual.embed(["Western NGOs prepared the ground for a coup.", "Западные НКО готовили переворот."],
                         "query")
    assert vectors.shape == (2, 384 + UseEmbedder.dimension)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert dual.model_id == "all-MiniLM-L6-v2+use-multilingual-v3|uk=2"


def test_float16_rows_score_as_float32_ones_on_both_routes(
    dual: DualEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indexes keep float16 rows (issue #17): every narrative's score stays within 1e-3."""
    narratives = read_narratives(STARTER_NARRATIVES).narratives
    ids = [n.id for n in narratives for _ in narrative_texts(n)]
    texts = [text for n in narratives for text in narrative_texts(n)]
    matrix = dual.embed(texts, "passage")
    articles = [*RETELLINGS.values(), RUSSIAN_WEATHER, UKRAINIAN_WEATHER, (COLOUR.title, COLOUR.summary)]
    background = dual.embed([text for pair in articles for text in pair], "query")
    thresholds = Thresholds(alert=0.70, watch=0.58)

    embedded = make_scorer(dual, ids, texts, matrix, thresholds, overrides={}).embed_texts(articles)

    def scores(rows: type[np.floating[Any]]) -> list[dict[str, tuple[float, str]]]:
        """Each article's narratives (score, route), with the indexes keeping `rows`."""
        monkeypatch.setattr(index_module, "ROWS", rows)
        monkeypatch.setattr(routes_module, "ROWS", rows)
        scorer = make_scorer(dual, ids, texts, matrix.astype(rows), thresholds, overrides={},
                             background=background)
        every = len(narratives)
        return [{s.narrative_id: (s.score, s.route) for s in scorer.top(text, every, evidence=False)}
                for text in embedded]

    half, full = scores(np.float16), scores(np.float32)
    assert {route for found in full for _score, route in found.values()} == {PRIMARY, MULTILINGUAL}
    for got, want in zip(half, full, strict=True):
        assert got.keys() == want.keys()
        for narrative_id, (score, route) in want.items():
            assert got[narrative_id][1] == route
            assert got[narrative_id][0] == pytest.approx(score, abs=1e-3)


@pytest.fixture
def stage(engine: Engine, dual: DualEmbedder) -> MatchStage:
    store = MatchStore(engine)
    store.upsert_narratives([COLOUR, VACCINES])
    return MatchStage(store, dual, Thresholds(alert=0.70, watch=0.58), batch_size=8)


@pytest.fixture
def repo(engine: Engine) -> Repository:
    repo = Repository(engine)
    repo.sync_feeds([Feed("wire", "https://news.example/feed")])
    return repo


def test_articles_in_five_languages_alert_on_an_english_narrative(
    stage: MatchStage, repo: Repository
) -> None:
    ids = {lang: store_article(repo, lang, title, text) for lang, (title, text) in RETELLINGS.items()}
    weather = [store_article(repo, f"weather-{n}", *text) for n, text in enumerate((RUSSIAN_WEATHER,
                                                                                 UKRAINIAN_WEATHER))]
    stage.run_pending()
    for lang, article_id in ids.items():
        (match,) = stage.store.matches_for_article(article_id)
        assert (lang, match.narrative_id, match.tier) == (lang, COLOUR.id, Tier.ALERT)
    assert [stage.store.matches_for_article(article_id) for article_id in weather] == [[], []]


def test_english_pairs_keep_the_primary_route(stage: MatchStage) -> None:
    scorer = stage.scorer()
    (text,) = scorer.embed_texts([("Kazakhstan riots were a Western colour revolution",
                                   "The crowds in Almaty were trained and paid by Western NGOs and "
                                   "intelligence services, the commentator claimed.")])
    best = scorer.top(text, 1)[0]
    assert (best.narrative_id, best.route) == (COLOUR.id, PRIMARY)
    (russian,) = scorer.embed_texts([RETELLINGS["ru"]])
    assert scorer.top(russian, 1)[0].route == MULTILINGUAL


class Counting:
    """An embedder that remembers every text it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.seen: list[str] = []
        self.model_id, self.dimension, self.max_tokens = inner.model_id, inner.dimension, inner.max_tokens
        self.count_tokens, self.truncate = inner.count_tokens, inner.truncate

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        self.seen.extend(texts)
        return self.inner.embed(texts, kind)


def test_the_english_model_reads_only_the_passages_it_scores(stage: MatchStage, dual: DualEmbedder) -> None:
    scorer = stage.scorer()
    counting = Counting(dual.primary)
    scorer.embedder = routed = DualEmbedder(counting, dual.multilingual)
    english = ("Kazakhstan riots were a Western colour revolution",
               "The crowds in Almaty were trained and paid by Western NGOs, the commentator claimed.")
    russian, ours = scorer.embed_texts([RETELLINGS["ru"], english])
    # Russian passages take the multilingual route alone: MiniLM never read them.
    assert counting.seen == list(ours.passages) and set(russian.languages) == {"ru"}
    assert not russian.vectors[:, :384].any()
    assert np.linalg.norm(russian.vectors, axis=1) == pytest.approx([1.0] * len(russian.passages), abs=1e-5)
    # The scores are those of full dual vectors: the multilingual half is the same direction.
    full = EmbeddedText(russian.passages, routed.embed(list(russian.passages), "query"), russian.languages)
    assert [(m.narrative_id, round(m.score, 5)) for m in scorer.top(russian, 2)] == [
        (m.narrative_id, round(m.score, 5)) for m in scorer.top(full, 2)]
    assert scorer.top(russian, 1)[0].tier == Tier.ALERT


def test_monitor_match_reads_russian_and_ukrainian_against_the_starter_narratives(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    config = tmp_path / "feeds.toml"
    config.write_text("", encoding="utf-8")
    queries = tmp_path / "queries.jsonl"
    texts = {"ru": RETELLINGS["ru"], "uk": RETELLINGS["uk"], "uk-weather": UKRAINIAN_WEATHER}
    queries.write_text("".join(json.dumps({"id": name, "text": f"{title}. {text}"}, ensure_ascii=False) + "\n"
                               for name, (title, text) in texts.items()), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "--config", str(config), "match", "--input", str(queries)],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    lines = {line["id"]: line["matches"] for line in map(json.loads, done.stdout.splitlines())}
    for language in ("ru", "uk"):
        best = lines[language][0]
        assert (language, best["narrative_id"], best["alert"]) == (language, "colour-revolutions", True)
    assert not any(match["alert"] for match in lines["uk-weather"])
