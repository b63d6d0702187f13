"""The matching stage: embed stored articles in batches, score them, store matches with evidence."""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from alerts.outbox_rules import DEFAULT_FLOOD, FloodRule, flood_rules
from alerts.planner import AlertPlanner, Route, Router
from monitor.config import AlertsSection, Settings
from monitor.matching.backends import resolve
from monitor.matching.embedders import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from monitor.matching.index import ROWS, Thresholds
from monitor.matching.languages import detect_each
from monitor.matching.multilingual import USE_MODEL, DualEmbedder, UseEmbedder
from monitor.matching.narrative_files import STARTER_NARRATIVES, read_narratives
from monitor.matching.onnx_embedder import OnnxEmbedder, default_cache_dir
from monitor.matching.scoring import (
    DEFAULT_FUSION,
    EmbeddedText,
    Fusion,
    Scorer,
    TextScore,
    make_scorer,
    narrative_texts,
)
from monitor.service.metrics import observe_match_run
from monitor.types import Match, Narrative, utc_now
from storage.feedback_repo import FeedbackStore
from storage.narratives_repo import MatchStore
from storage.outbox import Outbox

log = logging.getLogger("monitor.matching.stage")
# Stored passages whose multilingual cosines calibrate that route (monitor.matching.routes):
# enough for a stable mean and spread, few enough to score against 100,000 rows in seconds.
BACKGROUND_PASSAGES = 2000


@dataclass(frozen=True)
class MatchRun:
    """What one pass of the matching stage did."""

    articles: int = 0
    passages: int = 0
    new_matches: tuple[Match, ...] = ()
    seconds: float = 0.0


class MatchStage:
    """Keeps the narrative index current and matches every article not matched yet."""

    def __init__(
        self,
        store: MatchStore,
        embedder: Embedder,
        thresholds: Thresholds,
        *,
        batch_size: int = 64,
        max_passages: int = 32,
        window_tokens: int | None = 64,
        clock: Callable[[], datetime] = utc_now,
        planner: AlertPlanner | None = None,
        flood: FloodRule = DEFAULT_FLOOD,
        fusion: Fusion = DEFAULT_FUSION,
        calibrated: Callable[[], float | None] | None = None,
        embed_window: timedelta | None = None,
    ) -> None:
        self.fusion = fusion
        # The alert threshold `monitor calibrate --apply` stored over the configured one.
        self._calibrated = calibrated
        # Only articles fetched this recently are embedded: older ones had their vectors
        # pruned ([storage] vector_retention) and must not be embedded again.
        self.embed_window = embed_window
        self.planner = planner
        self.flood = flood
        self.store = store
        self.embedder = embedder
        self.thresholds = thresholds
        self.batch_size = batch_size
        self.max_passages = max_passages
        self.window_tokens = window_tokens
        self._clock = clock
        self._lock = threading.Lock()  # one pass at a time: the scheduler and CLI share a stage
        self._version: object = None
        self._scorer: Scorer | None = None

    def scorer(self) -> Scorer:
        """The scorer over the current narratives, rebuilt when they change."""
        calibrated = self._calibrated() if self._calibrated is not None else None
        version = (self.store.narratives_version(), calibrated)
        if self._scorer is None or version != self._version:
            self.embed_narratives()
            self._scorer = None  # the old index is garbage before the new one loads
            started = time.perf_counter()
            # Straight into float16, as the index keeps them: a float32 copy of 100,000 dual rows
            # (342 MB) never exists beside the index (issue #17).
            ids, texts, matrix = self.store.load_narrative_rows(self.embedder.model_id, True, ROWS)
            thresholds = self.store.narrative_thresholds()  # only ids and thresholds, not whole rows
            background, languages = None, None
            if isinstance(self.embedder, DualEmbedder):  # what ordinary news scores, per narrative text
                passages, background = self.store.passage_sample(self.embedder.model_id, BACKGROUND_PASSAGES)
                languages = detect_each(passages)
            self._scorer = make_scorer(
                self.embedder, ids, texts, self._matrix(matrix), _with_alert(self.thresholds, calibrated),
                overrides=thresholds,
                max_passages=self.max_passages, window_tokens=self.window_tokens, fusion=self.fusion,
                background=background, background_languages=languages)
            self._version = version
            log.info("narrative index loaded", extra={
                "narratives": len(self._scorer.index), "rows": len(ids), "model": self.embedder.model_id,
                "multilingual_rise": round(self._scorer.routes.rise, 3) if self._scorer.routes else 0,
                "bytes": self._scorer.nbytes, "seconds": round(time.perf_counter() - started, 3)})
        return self._scorer

    def embed_narratives(self, narratives: Sequence[Narrative] | None = None) -> int:
        """Embed narratives that have no vectors for the current model (after import or a model change)."""
        todo = narratives if narratives is not None else self.store.narratives_missing_vectors(
            self.embedder.model_id
        )
        for narrative in todo:
            # Learned examples (confirmed evidence, monitor.feedback) are phrasings like the others.
            texts = narrative_texts(narrative) + self.store.learned_texts(narrative.id)
            vectors = self.embedder.embed(texts, "passage")
            self.store.save_narrative_vectors(self.embedder.model_id, narrative.id, texts, vectors)
        return len(todo)

    def run_pending(self, *, alert: bool = True) -> MatchRun:
        """Embed and match every stored article that has not been, in batches across feeds.

        With `alert=False` (re-embedding) the matches are stored but raise no alerts.
        """
        with self._lock:
            started = time.perf_counter()
            articles = passages = 0
            new: list[Match] = []
            since = self._clock() - self.embed_window if self.embed_window else None
            batch = self.store.articles_to_embed(self.embedder.model_id, self.batch_size, since)
            if not batch:
                # Nothing to match: the index (and with it the model, seconds of imports for torch)
                # is not loaded; changed narratives are still embedded, which needs the model only then.
                self.embed_narratives()
            while batch:
                scorer = self.scorer()
                embedded = scorer.embed_texts([(a.title, a.text) for a in batch])
                ids = [a.id for a in batch]
                new += self._save(scorer, ids, embedded, alert)
                articles += len(batch)
                passages += sum(len(e.passages) for e in embedded)
                del embedded
                trim_heap()
                batch = self.store.articles_to_embed(self.embedder.model_id, self.batch_size, since)
            run = MatchRun(articles, passages, tuple(new), time.perf_counter() - started)
        observe_match_run(run.articles, run.passages, run.seconds)
        if articles:
            log.info("articles matched", extra={"articles": articles, "passages": passages,
                                                "new_matches": len(new), "seconds": round(run.seconds, 2)})
        return run

    def backfill(self, narrative_ids: Sequence[str], days: int) -> list[Match]:
        """Match recent articles against new or changed narratives, so earlier occurrences surface."""
        if not narrative_ids or days <= 0:
            return []
        with self._lock:
            scorer = self.scorer()
            since = self._clock() - timedelta(days=days)
            article_ids, texts, vectors = self.store.recent_passages(self.embedder.model_id, since)
            wanted = set(narrative_ids)
            found: dict[tuple[int, str], Match] = {}
            groups = list(_group(article_ids).items())
            # A batch at a time: days of passages scored at once would hold several copies of them.
            for start in range(0, len(groups), self.batch_size):
                chunk = groups[start : start + self.batch_size]
                embedded = [EmbeddedText(tuple(texts[i] for i in rows), vectors[rows]) for _, rows in chunk]
                for (article_id, _rows), scores in zip(chunk, scorer.matches_each(embedded), strict=True):
                    for score in scores:
                        if score.narrative_id in wanted:
                            found[(article_id, score.narrative_id)] = _match(article_id, score)
            return self.store.save_passages_and_matches(self.embedder.model_id, {}, list(found.values()))

    def _save(
        self, scorer: Scorer, ids: Sequence[int], embedded: Sequence[EmbeddedText], alert: bool
    ) -> list[Match]:
        matches = [_match(article_id, s) for article_id, scores in zip(ids, scorer.matches_each(embedded),
                                                                     strict=True) for s in scores]
        passages = {article_id: (text.passages, text.vectors)
                    for article_id, text in zip(ids, embedded, strict=True)}
        alerts = {}
        if self.planner is not None and matches and alert:
            leads = {article_id: text.vectors[0] for article_id, text in zip(ids, embedded, strict=True)}
            alerts = self.planner.plan(matches, leads)
        return self.store.save_passages_and_matches(
            self.embedder.model_id, passages, matches, alerts, flood_rules(self.flood)
        )

    def _matrix(self, matrix: NDArray[np.float16]) -> NDArray[np.float16]:
        if matrix.size == 0:
            return np.zeros((0, self.embedder.dimension), dtype=ROWS)
        return matrix


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing).

    A batch's model activations and scores are freed into the heaps of whichever threads ran
    them, and glibc keeps those pages: on torch, `monitor run` crept by ~230 MB over 1,000
    articles, and stayed flat with a trim after each batch (issue #17). A trim costs well under
    a millisecond to a few.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return cast(Callable[[int], int], ctypes.CDLL(None).malloc_trim)
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator is left as it is
        return None


def _with_alert(configured: Thresholds, alert: float | None) -> Thresholds:
    """The configured thresholds with a calibrated alert threshold (watch never above it)."""
    if alert is None:
        return configured
    return Thresholds(alert, min(configured.watch, alert))


def _group(article_ids: Sequence[int]) -> dict[int, list[int]]:
    rows: dict[int, list[int]] = {}
    for row, article_id in enumerate(article_ids):
        rows.setdefault(article_id, []).append(row)
    return rows


def _match(article_id: int, score: TextScore) -> Match:
    assert score.tier is not None  # Scorer.matches() returns tiered scores only
    return Match(article_id=article_id, narrative_id=score.narrative_id, score=score.score,
                 tier=score.tier, passage=score.passage, evidence=score.evidence)


def make_embedder(
    model: str, query_prompt: str | None, passage_prompt: str | None, multilingual: str = "",
    *, backend: str = "auto", cache_dir: Path | None = None,
) -> Embedder:
    """The configured model, paired with the multilingual one when `multilingual` names it.

    "hashing" is the model-free lexical embedder for tests and smoke runs; it is never paired.
    `backend` is resolved for this machine (monitor.matching.backends). With an ONNX backend
    ("onnx-int8", "onnx") the model's export is cached in `cache_dir` (by default the user's
    cache folder: the CLI passes data_dir/models).
    """
    if model == "hashing":
        return HashingEmbedder()
    primary: Embedder
    runs = resolve(backend)
    if runs in ("onnx-int8", "onnx"):
        folder = cache_dir if cache_dir is not None else default_cache_dir()
        primary = OnnxEmbedder(model, cache_dir=folder, int8=runs == "onnx-int8",
                               query_prompt=query_prompt, passage_prompt=passage_prompt)
    else:
        primary = SentenceTransformerEmbedder(model, query_prompt=query_prompt, passage_prompt=passage_prompt,
                                              bfloat16=runs == "torch-bf16")
    log.debug("embedding backend", extra={"setting": backend, "backend": runs, "model": model})
    if multilingual == USE_MODEL:
        return DualEmbedder(primary, UseEmbedder())
    return primary


def configured_embedder(settings: Settings) -> Embedder:
    """The embedder feeds.toml's [matching] asks for; int8 exports are cached under data_dir/models."""
    matching = settings.file.matching
    return make_embedder(matching.model, matching.query_prompt, matching.passage_prompt,
                         matching.multilingual_model, backend=matching.backend,
                         cache_dir=settings.data_dir / "models")


def build_stage(settings: Settings, engine: Engine) -> MatchStage:
    """The matching stage for a database; an empty one gets the starter narratives first."""
    matching = settings.file.matching
    store = MatchStore(engine)
    if matching.starter_narratives and store.narratives_version()[0] == 0:
        report = read_narratives(STARTER_NARRATIVES)
        store.upsert_narratives(report.narratives)
        log.info("starter narratives loaded", extra={"narratives": len(report.narratives),
                                                      "path": str(STARTER_NARRATIVES)})
    embedder = configured_embedder(settings)
    alerts = settings.file.alerts
    planner = AlertPlanner(
        Outbox(engine), router(alerts), lambda: {f.id: f for f in settings.feeds()},
        _NarrativeTags(store), embedder.model_id, alerts.near_duplicate,
    )
    return MatchStage(
        store, embedder, Thresholds(matching.alert_threshold, matching.watch_threshold),
        batch_size=matching.batch_size, max_passages=matching.max_passages,
        window_tokens=matching.passage_tokens, planner=planner,
        flood=FloodRule(alerts.flood_limit, timedelta(seconds=alerts.flood_window)),
        fusion=Fusion(matching.lexical_weight, matching.lexical_floor),
        calibrated=FeedbackStore(engine).calibrated_alert_threshold,
        embed_window=vector_window(settings),
    )


def vector_window(settings: Settings) -> timedelta | None:
    """How long article vectors are kept (None: forever), so how far back articles are embedded."""
    storage = settings.file.storage
    seconds = storage.vector_retention or storage.retention
    return timedelta(seconds=seconds) if seconds else None


def router(section: AlertsSection) -> Router:
    """The configured Slack routes, in configuration order."""
    routes = tuple(
        Route(r.channel, frozenset(r.feed_ids), frozenset(r.feed_tags), frozenset(r.narrative_tags))
        for r in section.slack.routes
    )
    return Router(section.slack.channel, routes)


class _NarrativeTags:
    """Narrative tags for routing, re-read only when the narratives change."""

    def __init__(self, store: MatchStore) -> None:
        self._store = store
        self._version: object = None
        self._tags: dict[str, tuple[str, ...]] = {}

    def __call__(self, narrative_id: str) -> tuple[str, ...]:
        version = self._store.narratives_version()
        if version != self._version:
            self._tags = {n.id: n.tags for n in self._store.narratives()}
            self._version = version
        return self._tags.get(narrative_id, ())
