"""A confirmed wording is learned: with the real default model, a paraphrase of it scores higher."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import Engine

from alerts.outbox_rules import DEFAULT_FLOOD, flood_rules
from monitor.feedback.service import FeedbackService
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.embedders import Embedder
from monitor.matching.index import Thresholds
from monitor.matching.scoring import Fusion
from monitor.matching.stage import MatchStage
from monitor.types import AlertIntent, AlertKind, Article, Feed, FeedStatus, Narrative
from storage.feedback_repo import FeedbackStore
from storage.narratives_repo import MatchStore
from storage.outbox import Outbox
from storage.repo import Repository

BIOLABS = Narrative("biolabs", "The United States runs secret biological weapons laboratories in Ukraine.")
CONFIRMED = "Pentagon-funded germ warfare facilities near Kharkiv are secretly breeding deadly pathogens."
PARAPHRASE = "Deadly pathogens are bred in secret at Kharkiv germ warfare sites paid for by the Pentagon."


def paraphrase_score(stage: MatchStage) -> float:
    scorer = stage.scorer()
    (text,) = scorer.embed_texts([("", PARAPHRASE)])
    (best,) = scorer.top(text, 1, evidence=False)
    return best.score


def test_a_confirmed_wording_lifts_a_paraphrase(engine: Engine, default_embedder: Embedder) -> None:
    repo = Repository(engine)
    repo.sync_feeds([Feed("wire", "https://news.example/feed")])
    store = MatchStore(engine)
    store.upsert_narratives([BIOLABS])
    # Low thresholds and no coverage floor so that the distant wording is matched at all.
    stage = MatchStage(store, default_embedder, Thresholds(alert=0.3, watch=0.2),
                       fusion=Fusion(0.2, 0.0), calibrated=FeedbackStore(engine).calibrated_alert_threshold)
    now = datetime.now(UTC)
    article = Article("wire", "g1", guid_hash("g1"), "https://news.example/1", "Ministry briefing",
                      CONFIRMED, None, "en", now, now, content_hash("Ministry briefing", CONFIRMED))
    state = repo.feed_state("wire")
    assert state is not None
    (stored,) = repo.record_success(replace(state, status=FeedStatus.OK), [article])
    before = paraphrase_score(stage)
    (match,) = stage.run_pending().new_matches
    intent = AlertIntent(AlertKind.ALERT, "C1", stored.id, BIOLABS.id)
    Outbox(engine).add([intent], flood_rules(DEFAULT_FLOOD))
    (alert,) = Outbox(engine).items(AlertKind.ALERT)

    service = FeedbackService(FeedbackStore(engine))
    service.record_label(alert.id, "confirm", "U1", source="slack")
    after = paraphrase_score(stage)  # the stage sees the change and re-embeds the narrative
    print(f"paraphrase score before {before:.3f}, after confirming {after:.3f}")
    assert after > before + 0.15, (before, after)
    assert CONFIRMED in match.evidence

    (example,) = service.store.learned(BIOLABS.id)
    assert service.store.forget(BIOLABS.id, example.id)
    assert abs(paraphrase_score(stage) - before) < 1e-4  # forgotten: back to the narrative's own texts
