"""The matching stage's storage on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, inspect, text

from monitor.ingest.dedup import content_hash, guid_hash
from monitor.types import Article, ArticleText, Feed, FeedStatus, Match, Narrative, Tier
from storage.narratives_repo import MatchStore, narrative_text_hash
from storage.repo import Repository
from storage.vectors import fill

T0 = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
MODEL = "test-model"
CLAIM = Narrative(
    id="biolabs", title="Secret biolabs make weapons", summary="Claims of hidden labs.",
    examples=("Hidden labs produce bioweapons", "Geheime Labore"), keywords=("biolab",),
    tags=("health",), countries=("UA",), url="https://euvsdisinfo.example/biolabs",
    threshold=0.7, disproof="No evidence.",
)
OTHER = Narrative(id="chemtrails", title="Planes spray chemicals")
_SERIAL = itertools.count()


class Ticker:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self._seconds = itertools.count()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=next(self._seconds))


@pytest.fixture
def store(engine: Engine) -> MatchStore:
    return MatchStore(engine, clock=Ticker())


def vectors(rows: int, seed: int = 0, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def add_articles(engine: Engine, *bodies: str, published: datetime = T0) -> list[int]:
    """Store one article per body, each under a new guid and URL, in feed "f"; their ids."""
    repo = Repository(engine)
    repo.sync_feeds([Feed("f", "https://f.example/feed")])
    items = [
        Article(
            feed_id="f", guid=guid, guid_hash=guid_hash(guid), url=f"https://f.example/{guid}",
            title="Title", text=body, author=None, language="en", published=published,
            fetched=published, content_hash=content_hash("Title", body),
        )
        for guid, body in ((f"g{next(_SERIAL)}", body) for body in bodies)
    ]
    state = repo.feed_state("f")
    assert state is not None
    return [s.id for s in repo.record_success(replace(state, status=FeedStatus.OK), items)]


def match(article_id: int, score: float = 0.8, narrative_id: str = "biolabs") -> Match:
    return Match(article_id, narrative_id, score, Tier.ALERT, "A passage.", "Its sentence.")


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_migration_creates_the_tables(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"narratives", "narrative_vectors", "article_passages", "matches"} <= tables
    uniques = inspect(engine).get_unique_constraints("matches")
    assert [u["column_names"] for u in uniques] == [["article_id", "narrative_id"]]


def test_upsert_returns_only_new_and_changed_texts(store: MatchStore) -> None:
    assert store.upsert_narratives([CLAIM, OTHER]) == ["biolabs", "chemtrails"]
    assert store.upsert_narratives([CLAIM, OTHER]) == []
    assert store.upsert_narratives([replace(CLAIM, tags=("war",), threshold=None)]) == []
    assert store.narrative("biolabs") == replace(CLAIM, tags=("war",), threshold=None)
    assert store.upsert_narratives([replace(OTHER, examples=("Contrails are poison",))]) == ["chemtrails"]
    assert store.narratives() == [
        replace(CLAIM, tags=("war",), threshold=None),
        replace(OTHER, examples=("Contrails are poison",)),
    ]
    assert store.narrative("nope") is None


def test_text_hash_covers_exactly_the_embedded_texts() -> None:
    assert narrative_text_hash(CLAIM) == narrative_text_hash(replace(CLAIM, tags=(), url=None))
    assert narrative_text_hash(CLAIM) != narrative_text_hash(replace(CLAIM, summary="Other."))
    assert narrative_text_hash(CLAIM) != narrative_text_hash(replace(CLAIM, examples=()))


def test_vectors_round_trip_bit_exactly(store: MatchStore) -> None:
    store.upsert_narratives([CLAIM, OTHER])
    a, b = vectors(3, seed=1), vectors(1, seed=2)
    store.save_narrative_vectors(MODEL, "biolabs", ["t", "e1", "e2"], a)
    store.save_narrative_vectors(MODEL, "chemtrails", ["t"], b)
    ids, matrix = store.load_narrative_vectors(MODEL)
    assert ids == ["biolabs"] * 3 + ["chemtrails"]
    assert matrix.dtype == np.float32 and matrix.flags.writeable
    assert matrix.tobytes() == np.vstack([a, b]).tobytes()
    store.save_narrative_vectors(MODEL, "biolabs", ["t"], a[:1])  # replaces, drops rows 1 and 2
    assert store.load_narrative_vectors(MODEL)[0] == ["biolabs", "chemtrails"]
    ids, matrix = store.load_narrative_vectors("another-model")
    assert ids == [] and matrix.shape == (0, 0)


def test_vector_shapes_are_checked(store: MatchStore) -> None:
    store.upsert_narratives([CLAIM])
    with pytest.raises(ValueError, match="2 texts but 3 vector rows"):
        store.save_narrative_vectors(MODEL, "biolabs", ["a", "b"], vectors(3))
    with pytest.raises(ValueError, match="2-D"):
        store.save_narrative_vectors(MODEL, "biolabs", ["a"], np.zeros(8))
    with pytest.raises(KeyError):
        store.save_narrative_vectors(MODEL, "nope", ["a"], vectors(1))


def test_changed_text_drops_stale_vectors(store: MatchStore) -> None:
    store.upsert_narratives([CLAIM, OTHER])
    assert [n.id for n in store.narratives_missing_vectors(MODEL)] == ["biolabs", "chemtrails"]
    store.save_narrative_vectors(MODEL, "biolabs", ["t"], vectors(1))
    store.save_narrative_vectors(MODEL, "chemtrails", ["t"], vectors(1))
    assert store.narratives_missing_vectors(MODEL) == []
    store.upsert_narratives([replace(CLAIM, title="Secret labs make weapons")])
    assert [n.id for n in store.narratives_missing_vectors(MODEL)] == ["biolabs"]
    assert store.load_narrative_vectors(MODEL)[0] == ["chemtrails"]


def test_disabled_narratives_are_left_out(store: MatchStore) -> None:
    store.upsert_narratives([CLAIM, OTHER])
    store.save_narrative_vectors(MODEL, "biolabs", ["t"], vectors(1))
    assert store.set_enabled("biolabs", False) is True
    assert store.set_enabled("nope", False) is False
    assert [n.id for n in store.narratives(enabled_only=True)] == ["chemtrails"]
    assert store.load_narrative_vectors(MODEL)[0] == []
    assert store.load_narrative_vectors(MODEL, enabled_only=False)[0] == ["biolabs"]
    assert [n.id for n in store.narratives_missing_vectors(MODEL)] == ["chemtrails"]


def test_narratives_version_changes_with_every_update(store: MatchStore) -> None:
    assert store.narratives_version() == (0, None)
    store.upsert_narratives([CLAIM])
    first = store.narratives_version()
    assert first[0] == 1 and first[1] is not None and first[1].tzinfo is not None
    store.upsert_narratives([CLAIM])
    assert store.narratives_version() == first
    store.set_enabled("biolabs", False)
    second = store.narratives_version()
    assert second[0] == 1 and second != first
    store.upsert_narratives([OTHER])
    assert store.narratives_version()[0] == 2


def test_articles_to_embed_skips_embedded_and_duplicates(engine: Engine, store: MatchStore) -> None:
    first, second = add_articles(engine, "One.", "Two.")
    (copy,) = add_articles(engine, "Two. ")  # same text under another URL: a duplicate
    assert copy not in (first, second)
    assert store.articles_to_embed(MODEL, 10) == [ArticleText(first, "Title", "One."),
                                                  ArticleText(second, "Title", "Two.")]
    assert store.articles_to_embed(MODEL, 1) == [ArticleText(first, "Title", "One.")]
    store.save_passages_and_matches(MODEL, {first: (["One."], vectors(1))}, [])
    assert [a.id for a in store.articles_to_embed(MODEL, 10)] == [second]
    assert [a.id for a in store.articles_to_embed("another-model", 10)] == [first, second]
    assert store.delete_passages(MODEL) == 1
    assert [a.id for a in store.articles_to_embed(MODEL, 10)] == [first, second]


def test_passages_are_replaced_and_deleted_per_model(engine: Engine, store: MatchStore) -> None:
    (article,) = add_articles(engine, "One.")
    store.save_passages_and_matches(MODEL, {article: (["a", "b", "c"], vectors(3))}, [])
    store.save_passages_and_matches("other", {article: (["a"], vectors(1, dim=4))}, [])
    store.save_passages_and_matches(MODEL, {article: (["x", "y"], vectors(2, seed=5))}, [])
    ids, texts, matrix = store.recent_passages(MODEL, T0)
    assert (ids, texts) == ([article] * 2, ["x", "y"])
    assert matrix.tobytes() == vectors(2, seed=5).tobytes()
    assert store.recent_passages("other", T0)[2].shape == (1, 4)
    assert store.delete_passages(article_ids=[article + 1]) == 0
    assert store.delete_passages() == 3
    assert count(engine, "article_passages") == 0


def test_saving_matches_twice_keeps_one_row(engine: Engine, store: MatchStore) -> None:
    store.upsert_narratives([CLAIM, OTHER])
    (article,) = add_articles(engine, "One.")
    passages = {article: (["One."], vectors(1))}
    found = [match(article), match(article, 0.6, "chemtrails")]
    assert store.save_passages_and_matches(MODEL, passages, found) == found
    assert store.save_passages_and_matches(MODEL, passages, found) == []
    assert count(engine, "matches") == 2
    assert store.matches_for_article(article) == found


def test_a_changed_score_updates_the_match(engine: Engine, store: MatchStore) -> None:
    store.upsert_narratives([CLAIM])
    (article,) = add_articles(engine, "One.")
    store.save_passages_and_matches(MODEL, {}, [match(article, 0.6)])
    better = replace(match(article, 0.9), evidence="A closer sentence.")
    assert store.save_passages_and_matches(MODEL, {}, [better]) == []
    assert store.matches() == [better]
    with engine.connect() as connection:
        created, updated = connection.execute(text("SELECT created_at, updated_at FROM matches")).one()
    assert created != updated


def test_matches_filter_by_time_and_tier(engine: Engine) -> None:
    now = [T0]
    store = MatchStore(engine, clock=lambda: now[0])
    store.upsert_narratives([CLAIM, OTHER])
    a, b = add_articles(engine, "One.", "Two.")
    watch = replace(match(b, 0.5, "chemtrails"), tier=Tier.WATCH)
    store.save_passages_and_matches(MODEL, {}, [match(a, 0.7), watch])
    now[0] = T0 + timedelta(hours=1)
    store.save_passages_and_matches(MODEL, {}, [match(b, 0.9), match(a, 0.75)])
    assert [m.score for m in store.matches()] == [0.9, 0.75, 0.5]
    assert store.matches(tier=Tier.WATCH) == [watch]
    assert store.matches(since=now[0]) == [match(b, 0.9)]  # first found since then; a was updated
    assert store.matches(since=now[0] + timedelta(seconds=1)) == []


def test_concurrent_saves_of_one_match_make_one_row(engine: Engine) -> None:
    store = MatchStore(engine)
    store.upsert_narratives([CLAIM])
    (article,) = add_articles(engine, "One.")
    barrier = threading.Barrier(4)
    results: list[list[Match]] = []

    def save(seed: int) -> None:
        barrier.wait()
        passages = {article: ([f"p{i}" for i in range(seed + 1)], vectors(seed + 1, seed))}
        results.append(store.save_passages_and_matches(MODEL, passages, [match(article, 0.5 + seed / 10)]))

    threads = [threading.Thread(target=save, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert count(engine, "matches") == 1
    ids, texts, matrix = store.recent_passages(MODEL, T0)  # the last writer's passages, whole
    assert ids == [article] * len(texts) and texts == [f"p{i}" for i in range(len(texts))]
    assert matrix.tobytes() == vectors(len(texts), len(texts) - 1).tobytes()


def test_recent_passages_honour_since(engine: Engine, store: MatchStore) -> None:
    (old,) = add_articles(engine, "Old.", published=T0 - timedelta(days=8))
    (new,) = add_articles(engine, "New.", published=T0)
    store.save_passages_and_matches(
        MODEL, {old: (["old"], vectors(1)), new: (["new", "news"], vectors(2))}, []
    )
    ids, texts, matrix = store.recent_passages(MODEL, T0 - timedelta(days=7))
    assert (ids, texts, matrix.shape) == ([new, new], ["new", "news"], (2, 8))
    assert store.recent_passages(MODEL, T0)[0] == [new, new]  # "at or after"
    assert len(store.recent_passages(MODEL, T0 - timedelta(days=9))[0]) == 3


def test_vectors_stream_into_one_matrix(store: MatchStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storage.narratives_repo._STREAM_ROWS", 2)  # several fetches
    store.upsert_narratives([CLAIM, OTHER])
    a, b = vectors(3, seed=1), vectors(2, seed=2)
    store.save_narrative_vectors(MODEL, "biolabs", ["t", "e1", "e2"], a)
    store.save_narrative_vectors(MODEL, "chemtrails", ["t", "e"], b)
    ids, matrix = store.load_narrative_vectors(MODEL)
    assert ids == ["biolabs"] * 3 + ["chemtrails"] * 2
    assert matrix.flags.c_contiguous and matrix.tobytes() == np.vstack([a, b]).tobytes()
    store.save_narrative_vectors(MODEL, "chemtrails", ["t"], vectors(1, dim=4))
    with pytest.raises(ValueError, match="differ in dimension"):
        store.load_narrative_vectors(MODEL)


def test_fill_copes_with_rows_added_or_removed_after_the_count() -> None:
    rows = [("a", v.tobytes()) for v in vectors(5, seed=3)]
    for expected in (0, 1, 5, 9):
        keys, matrix = fill(iter(rows), expected, MODEL, np.float32)
        assert keys == [("a",)] * 5
        assert matrix.tobytes() == vectors(5, seed=3).tobytes()
    keys, matrix = fill(iter([]), 3, MODEL, np.float32)
    assert keys == [] and matrix.shape == (0, 0)
    with pytest.raises(ValueError, match="differ in dimension"):
        fill(iter([("a", b"12345")]), 1, MODEL, np.float32)


def test_narrative_thresholds_of_enabled_narratives(store: MatchStore) -> None:
    store.upsert_narratives([CLAIM, OTHER, replace(OTHER, id="rigged", threshold=0.4)])
    assert store.narrative_thresholds() == {"biolabs": 0.7, "rigged": 0.4}
    store.set_enabled("rigged", False)
    assert store.narrative_thresholds() == {"biolabs": 0.7}
