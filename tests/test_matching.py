"""The matching stage with the real default model, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.embedders import Embedder, HashingEmbedder, Kind, Vectors
from monitor.matching.index import Thresholds
from monitor.matching.multilingual import DualEmbedder
from monitor.matching.stage import MatchStage
from monitor.types import Article, Feed, FeedStatus, Narrative, Tier
from storage.narratives_repo import MatchStore
from storage.repo import Repository

NATO = Narrative(
    id="nato-encirclement",
    title="NATO is encircling Russia with military bases and plans to attack it.",
    summary="The alliance is said to be closing a ring of bases around Russia's borders.",
    examples=("НАТО окружает Россию военными базами.",),
)
BIOLABS = Narrative(
    id="biolabs",
    title="The United States runs secret biological weapons laboratories in Ukraine.",
)
FILLER = (
    "The city council met on Tuesday to discuss the new budget for public libraries. "
    "Officials said opening hours would be extended in the winter months. "
    "Several residents asked for more children's books and a reading room. "
    "The mayor promised a decision before the end of the year. "
)


def store_article(repo: Repository, guid: str, title: str, text: str, days_ago: float = 0) -> int:
    now = datetime.now(UTC) - timedelta(days=days_ago)
    article = Article(
        feed_id="wire", guid=guid, guid_hash=guid_hash(guid), url=f"https://news.example/{guid}",
        title=title, text=text, author=None, language="en", published=now, fetched=now,
        content_hash=content_hash(title, text),
    )
    state = repo.feed_state("wire")
    assert state is not None
    (stored,) = repo.record_success(replace(state, status=FeedStatus.OK), [article])
    return stored.id


@pytest.fixture
def repo_with_feed(engine: Engine) -> Repository:
    repo = Repository(engine)
    repo.sync_feeds([Feed("wire", "https://news.example/feed")])
    return repo


def make_stage(engine: Engine, embedder: Embedder, narratives: list[Narrative]) -> MatchStage:
    store = MatchStore(engine)
    store.upsert_narratives(narratives)
    return MatchStage(store, embedder, Thresholds(alert=0.6, watch=0.5), batch_size=8)


def test_paraphrase_matches_and_unrelated_does_not(
    engine: Engine, repo_with_feed: Repository, default_embedder: Embedder
) -> None:
    stage = make_stage(engine, default_embedder, [NATO, BIOLABS])
    hit = store_article(repo_with_feed, "hit", "Moscow warns of Western military ring",
                        "Russian officials said NATO keeps surrounding Russia with its military bases "
                        "and is preparing an attack.")
    miss = store_article(repo_with_feed, "miss", "Library hours extended", FILLER)
    run = stage.run_pending()
    assert run.articles == 2
    matched = {(m.article_id, m.narrative_id): m for m in run.new_matches}
    assert (hit, "nato-encirclement") in matched
    assert matched[(hit, "nato-encirclement")].tier is Tier.ALERT
    assert not [m for m in run.new_matches if m.article_id == miss]
    assert stage.run_pending().articles == 0  # nothing left to embed
    assert len(stage.store.matches_for_article(hit)) == len([k for k in matched if k[0] == hit])


def test_long_article_matches_on_the_right_passage(
    engine: Engine, repo_with_feed: Repository, default_embedder: Embedder
) -> None:
    stage = make_stage(engine, default_embedder, [BIOLABS])
    claim = "A spokesman claimed that the United States operates secret bioweapon laboratories in Ukraine."
    text = FILLER * 6 + claim + " " + FILLER * 6
    article_id = store_article(repo_with_feed, "long", "Council news", text)
    run = stage.run_pending()
    (match,) = [m for m in run.new_matches if m.article_id == article_id]
    assert match.narrative_id == "biolabs"
    assert claim in match.passage and match.evidence == claim
    assert run.passages > 1


def test_rerun_and_reembed_create_no_duplicate_matches(
    engine: Engine, repo_with_feed: Repository
) -> None:
    embedder = HashingEmbedder()
    stage = make_stage(engine, embedder, [BIOLABS])
    article_id = store_article(repo_with_feed, "a", BIOLABS.title, "")
    first = stage.run_pending()
    assert [m.article_id for m in first.new_matches] == [article_id]
    stage.store.delete_passages(None)
    second = stage.run_pending()
    assert second.articles == 1 and second.new_matches == ()
    assert len(stage.store.matches()) == 1


def test_new_narrative_is_backfilled_over_recent_articles(
    engine: Engine, repo_with_feed: Repository
) -> None:
    embedder = HashingEmbedder()
    stage = make_stage(engine, embedder, [NATO])
    recent = store_article(repo_with_feed, "recent", BIOLABS.title, "", days_ago=2)
    store_article(repo_with_feed, "old", BIOLABS.title + " Again.", "", days_ago=30)
    assert stage.run_pending().new_matches == ()
    changed = stage.store.upsert_narratives([BIOLABS])
    found = stage.backfill(changed, days=7)
    assert [(m.article_id, m.narrative_id) for m in found] == [(recent, "biolabs")]


def test_changing_the_model_re_embeds_narratives(engine: Engine) -> None:
    store = MatchStore(engine)
    store.upsert_narratives([NATO, BIOLABS])
    small = MatchStage(store, HashingEmbedder(dimension=64), Thresholds(0.6, 0.5))
    assert len(small.scorer().index) == 2
    large = MatchStage(store, HashingEmbedder(dimension=128), Thresholds(0.6, 0.5))
    assert large.embedder.model_id != small.embedder.model_id
    assert len(large.scorer().index) == 2
    ids, matrix = store.load_narrative_vectors(large.embedder.model_id)
    assert matrix.shape == (len(ids), 128)


def test_disabled_narratives_are_not_matched(engine: Engine, repo_with_feed: Repository) -> None:
    stage = make_stage(engine, HashingEmbedder(), [BIOLABS, NATO])
    stage.store.set_enabled("biolabs", False)
    store_article(repo_with_feed, "a", BIOLABS.title, "")
    assert stage.run_pending().new_matches == ()


def test_updated_article_is_matched_again(engine: Engine, repo_with_feed: Repository) -> None:
    stage = make_stage(engine, HashingEmbedder(), [BIOLABS])
    article_id = store_article(repo_with_feed, "a", "Library hours extended", FILLER)
    assert stage.run_pending().new_matches == ()
    assert store_article(repo_with_feed, "a", BIOLABS.title, "") == article_id  # same guid, new text
    run = stage.run_pending()
    assert run.articles == 1
    assert [(m.article_id, m.narrative_id) for m in run.new_matches] == [(article_id, "biolabs")]


class Lazy(HashingEmbedder):
    """Counts every embedding; `dimension` stands for a model load (torch's imports take seconds)."""

    def __init__(self) -> None:
        super().__init__(dimension=64)
        self.loads = self.texts = 0
        self.embedding = False

    def __getattribute__(self, name: str) -> object:
        if name == "dimension" and not object.__getattribute__(self, "embedding"):
            object.__setattr__(self, "loads", object.__getattribute__(self, "loads") + 1)
        return object.__getattribute__(self, name)

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        self.texts += len(texts)
        self.embedding = True  # the embedding itself has loaded the model, whatever it reads
        try:
            return super().embed(texts, kind)
        finally:
            self.embedding = False


def test_a_pass_with_nothing_to_match_loads_no_model_but_embeds_changed_narratives(
    engine: Engine, repo_with_feed: Repository
) -> None:
    def stage() -> tuple[MatchStage, Lazy]:  # as a new process would build it
        embedder = Lazy()  # as the primary model of a pair, whose index reads its dimension
        dual = DualEmbedder(embedder, HashingEmbedder(dimension=32))
        return MatchStage(MatchStore(engine), dual, Thresholds(alert=0.6, watch=0.5), batch_size=8), embedder

    first, embedder = stage()
    first.store.upsert_narratives([NATO])
    store_article(repo_with_feed, "n1", "NATO expansion", "NATO keeps moving its bases towards Russia.")
    assert first.run_pending().articles == 1 and embedder.loads > 0
    # The next `poll --once` finds nothing new: no model, no index.
    later, embedder = stage()
    assert later.run_pending().articles == 0
    assert (embedder.loads, embedder.texts) == (0, 0)
    # A narrative edited since is embedded all the same (that one needs the model).
    later.store.upsert_narratives([replace(NATO, title="NATO moves its bases up to Russia's borders")])
    assert later.run_pending().articles == 0 and embedder.texts > 0
