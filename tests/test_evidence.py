"""Evidence for a flood of matches: right sentences, and model calls bounded per article batch."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine
from test_matching import store_article

from monitor.matching.embedders import HashingEmbedder, Kind, Vectors
from monitor.matching.index import Thresholds
from monitor.matching.stage import MatchStage
from monitor.types import Feed, Narrative
from storage.narratives_repo import MatchStore
from storage.repo import Repository


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording each call's texts."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Kind, list[str]]] = []

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        self.calls.append((kind, list(texts)))
        return super().embed(texts, kind)


CLAIMS = {
    "labs": "secret biological weapons laboratories operate in Ukraine",
    "towers": "mobile towers spread the virus through radio waves",
    "chips": "vaccines contain tracking microchips from Bill Gates",
    "ballots": "postal ballots were forged by the thousands in the election",
}
CALM = "The weather stayed mild on Tuesday. Traffic was light in the centre."


def test_many_matches_per_article_embed_each_sentence_once(sqlite_engine: Engine) -> None:
    repo = Repository(sqlite_engine)
    repo.sync_feeds([Feed("wire", "https://news.example/feed")])
    store = MatchStore(sqlite_engine)
    store.upsert_narratives([Narrative(id=key, title=claim) for key, claim in CLAIMS.items()])
    embedder = CountingEmbedder()
    stage = MatchStage(store, embedder, Thresholds(alert=0.5, watch=0.35), batch_size=16)
    stage.scorer()  # narratives embedded first: not part of the articles' cost
    embedder.calls.clear()
    # Every article repeats all four claims, each in its own sentence among calm ones.
    body = " ".join(f"{CALM} Critics say {claim}." for claim in CLAIMS.values())
    ids = [store_article(repo, f"a{n}", f"Hot topic {n}", f"{body} Item {n}.") for n in range(10)]

    run = stage.run_pending()

    assert {(m.article_id, m.narrative_id) for m in run.new_matches} == {(i, k) for i in ids for k in CLAIMS}
    for match in run.new_matches:
        assert match.evidence == f"Critics say {CLAIMS[match.narrative_id]}."
    # One call for the batch's passages, one for the sentences of its matched passages.
    assert [kind for kind, _ in embedder.calls] == ["query", "query"]
    sentences = embedder.calls[1][1]
    assert len(sentences) == len(set(sentences))  # 40 matches, no sentence embedded twice
    assert stage.run_pending().articles == 0 and len(embedder.calls) == 2
