"""Measuring the matcher on labelled data: ranking quality and what the alert thresholds catch.

Everything is scored by `monitor.matching.scoring.Scorer`, the path the pipeline uses, so the figures
describe what analysts would see. Loaders read the CLEF 2020 CheckThat! Task 2 layout or a
user's own narratives file plus queries JSONL.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from monitor.errors import EvalDataError, NarrativeFileError
from monitor.matching.embedders import Embedder, Vectors
from monitor.matching.index import Thresholds
from monitor.matching.narrative_files import read_narratives
from monitor.matching.scoring import DEFAULT_FUSION, Fusion, Scorer, make_scorer, narrative_texts
from monitor.types import Narrative, Tier

Qrels = Mapping[str, frozenset[str]]
Raised = Mapping[str, Sequence[tuple[str, Tier]]]  # query id -> (narrative id, tier) the scorer raised


@dataclass(frozen=True)
class EvalSet:
    """Narratives, queries as (id, text), and for each query the narratives it repeats."""

    narratives: tuple[Narrative, ...]
    queries: tuple[tuple[str, str], ...]
    qrels: Qrels  # query id -> relevant narrative ids; empty or absent: a negative


@dataclass(frozen=True)
class QueryOutcome:
    """What the scorer made of one query."""

    query_id: str
    relevant: frozenset[str]
    top: tuple[tuple[str, float], ...]  # (narrative id, score), best first
    raised: tuple[tuple[str, Tier], ...]  # every narrative reaching a tier, as the pipeline stores it


@dataclass(frozen=True)
class EvalResult:
    """Metrics at the scorer's thresholds, with the per-query outcomes to sweep other thresholds."""

    metrics: Mapping[str, float]
    thresholds: Thresholds
    narratives: int
    queries: int
    positives: int  # queries with at least one relevant narrative
    outcomes: tuple[QueryOutcome, ...]
    seconds: float


class SweepRow(NamedTuple):
    """Alerting on a query's best narrative when it scores at least `threshold`."""

    threshold: float
    recall: float  # positive queries whose top-1 is relevant and alerts
    precision: float  # of queries whose top-1 alerts, those where it is relevant
    pair_recall: float  # positive queries with any relevant narrative in the top k alerting
    pair_precision: float  # of all top-k (query, narrative) pairs alerting, the relevant ones
    alerts: int  # top-k pairs alerting
    stray_rate: float  # queries whose best non-relevant narrative alerts: as if their own were unknown


# Loading ------------------------------------------------------------------------------------


def load_checkthat(root: Path, split: str = "dev") -> EvalSet:
    """CheckThat! 2020 Task 2: verified claims as narratives, tweets of `split` as queries."""
    claims = [_claim(*row) for row in _tsv(root / "verified_claims.docs.tsv", 3, "vclaim")]
    queries = tuple((row[0], row[1]) for row in _tsv(root / split / "tweets.queries.tsv", 2, "tweet_content"))
    qrels_file = root / split / "tweet-vclaim-pairs.qrels"
    qrels = _read_qrels(qrels_file)
    _check_ids(qrels_file, qrels, queries, claims)
    return EvalSet(tuple(claims), queries, qrels)


def _claim(claim_id: str, claim: str, title: str) -> Narrative:
    claim, title = " ".join(claim.split()), " ".join(title.split())
    return Narrative(id=claim_id, title=claim, examples=(title,) if title and title != claim else ())


def _require(path: Path) -> None:
    if not path.parent.is_dir():
        raise EvalDataError(path.parent, "no such directory")
    if not path.is_file():
        raise EvalDataError(path, "no such file")


def _tsv(path: Path, columns: int, header: str) -> Iterator[list[str]]:
    """The fields of each record; a first record naming `header` in its second column is skipped."""
    _require(path)
    with path.open(encoding="utf-8-sig", newline="") as file:
        # The release was written by pandas: quoted fields with doubled quotes, some spanning lines.
        reader = csv.reader(file, delimiter="\t")
        start = 1
        try:
            for record in reader:
                if any(field.strip() for field in record):
                    if len(record) != columns:
                        raise EvalDataError(path, f"{len(record)} fields, expected {columns}", start)
                    if not (start == 1 and record[1].strip().lower() == header):
                        yield record
                start = reader.line_num + 1
        except csv.Error as exc:
            raise EvalDataError(path, f"not valid TSV: {exc}", reader.line_num) from exc


def _read_qrels(path: Path) -> dict[str, frozenset[str]]:
    """TREC qrels (`query 0 doc relevance`); relevance above 0 counts."""
    _require(path)
    relevant: dict[str, set[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4 or not fields[3].lstrip("-").isdigit():
            raise EvalDataError(path, "expected 'query_id 0 claim_id relevance'", number)
        if int(fields[3]) > 0:
            relevant.setdefault(fields[0], set()).add(fields[2])
    return {query: frozenset(ids) for query, ids in relevant.items()}


def _check_ids(
    path: Path, qrels: Qrels, queries: Sequence[tuple[str, str]], narratives: Sequence[Narrative]
) -> None:
    """A label naming an unknown query or narrative would silently count as a miss."""
    query_ids, narrative_ids = {q for q, _ in queries}, {n.id for n in narratives}
    for query, ids in qrels.items():
        unknown = sorted(ids - narrative_ids)
        if query not in query_ids or unknown:
            what = f"unknown narrative id(s) {', '.join(unknown)}" if unknown else "unknown query id"
            raise EvalDataError(path, f"query {query}: {what}")


def load_jsonl_set(narratives_file: Path, queries_file: Path) -> EvalSet:
    """A user's labelled set: any narrative file, and `{"id", "text", "narratives": [...]}` lines."""
    try:
        report = read_narratives(narratives_file)
    except NarrativeFileError as exc:
        raise EvalDataError(exc.path, exc.reason, exc.line) from exc
    if report.problems:
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise EvalDataError(narratives_file, first.message + more, first.line or None)
    queries, qrels = _read_queries(queries_file)
    _check_ids(queries_file, qrels, queries, report.narratives)
    return EvalSet(report.narratives, tuple(queries), qrels)


def _read_queries(path: Path) -> tuple[list[tuple[str, str]], dict[str, frozenset[str]]]:
    _require(path)
    queries: list[tuple[str, str]] = []
    qrels: dict[str, frozenset[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), start=1):
        if line.strip():
            query_id, text, relevant = _query(path, number, line)
            if query_id in qrels:
                raise EvalDataError(path, f"duplicate query id {query_id!r}", number)
            queries.append((query_id, text))
            qrels[query_id] = relevant
    return queries, qrels


def _query(path: Path, number: int, line: str) -> tuple[str, str, frozenset[str]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalDataError(path, f"not valid JSON: {exc.msg}", number) from exc
    ids = row.get("narratives") if isinstance(row, dict) else None
    text = row.get("text") if isinstance(row, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
        raise EvalDataError(path, 'expected "narratives": a list of narrative ids ([] for none)', number)
    if not isinstance(text, str) or not text.strip() or row.get("id") in (None, ""):
        raise EvalDataError(path, 'expected {"id": ..., "text": "...", "narratives": [...]}', number)
    return str(row["id"]), text, frozenset(str(i) for i in ids)


# Metrics -------------------------------------------------------------------------------------


def ranking_metrics(rankings: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """MAP@5, MRR, P@1, Recall@1/5/10, averaged over queries with a relevant narrative (as CheckThat!)."""
    judged = {query: ids for query, ids in qrels.items() if ids}
    rows = [_ranking_row(list(rankings.get(query, ())), ids) for query, ids in judged.items()]
    names = ("MAP@5", "MRR", "P@1", "Recall@1", "Recall@5", "Recall@10")
    means = np.mean(rows, axis=0) if rows else np.zeros(len(names))
    return {name: float(value) for name, value in zip(names, means, strict=True)}


def _ranking_row(ranking: list[str], relevant: frozenset[str]) -> list[float]:
    hits = [narrative in relevant for narrative in ranking]
    precision_sum = sum(sum(hits[:r]) / r for r in range(1, 6) if r <= len(hits) and hits[r - 1])
    reciprocal = next((1 / rank for rank, hit in enumerate(hits, start=1) if hit), 0.0)
    recall = [len(relevant.intersection(ranking[:k])) / len(relevant) for k in (1, 5, 10)]
    return [precision_sum / min(len(relevant), 5), reciprocal, float(hits[:1] == [True]), *recall]


def threshold_metrics(raised: Raised, qrels: Qrels) -> dict[str, float]:
    """Recall and precision of the alert tier, and of alert-or-watch ("flag"), as raised.

    Recall: positive queries with an alert on a relevant narrative. Precision: relevant pairs
    among every (query, narrative) pair raised; every pair raised on a negative query is false.
    """
    alerts = {query: [n for n, tier in pairs if tier is Tier.ALERT] for query, pairs in raised.items()}
    flags = {query: [n for n, _tier in pairs] for query, pairs in raised.items()}
    return {**_recall_precision("alert", alerts, qrels), **_recall_precision("flag", flags, qrels)}


def _recall_precision(name: str, raised: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    positives = [query for query, ids in qrels.items() if ids]
    found = sum(1 for query in positives if qrels[query].intersection(raised.get(query, ())))
    pairs = [(query, n) for query, ids in raised.items() for n in ids]
    correct = sum(1 for query, n in pairs if n in qrels.get(query, frozenset()))
    return {
        f"{name}_recall": found / len(positives) if positives else 0.0,
        f"{name}_precision": correct / len(pairs) if pairs else 0.0,  # nothing raised: 0, as sklearn
        f"{name}_pairs": float(len(pairs)),
    }


# Running -------------------------------------------------------------------------------------


def build_scorer(
    embedder: Embedder,
    narratives: Sequence[Narrative],
    thresholds: Thresholds,
    max_passages: int = 32,
    window_tokens: int | None = 64,
    fusion: Fusion = DEFAULT_FUSION,
    background: Vectors | None = None,
    background_languages: Sequence[str] | None = None,
) -> Scorer:
    """A scorer over `narratives`, embedded as the pipeline embeds them, in one batch.

    `background`: passages of ordinary news embedded by `embedder`, for the multilingual route.
    """
    texts = [narrative_texts(n) for n in narratives]
    ids = [n.id for n, rows in zip(narratives, texts, strict=True) for _ in rows]
    flat = [t for rows in texts for t in rows]
    vectors = embedder.embed(flat, "passage")
    overrides = {n.id: n.threshold for n in narratives if n.threshold is not None}
    return make_scorer(embedder, ids, flat, vectors, thresholds, overrides=overrides,
                       max_passages=max_passages, window_tokens=window_tokens, fusion=fusion,
                       background=background, background_languages=background_languages)


def evaluate(scorer: Scorer, evalset: EvalSet, k: int = 10, batch: int = 64) -> EvalResult:
    """Rank every narrative for every query, and record what the pipeline would have raised."""
    started = time.perf_counter()
    outcomes: list[QueryOutcome] = []
    for start in range(0, len(evalset.queries), batch):
        chunk = evalset.queries[start : start + batch]
        embedded = scorer.embed_texts([("", text) for _id, text in chunk])
        for (query_id, _text), text in zip(chunk, embedded, strict=True):
            top = tuple((s.narrative_id, s.score) for s in scorer.top(text, k, evidence=False))
            raised = tuple((s.narrative_id, s.tier) for s in scorer.matches(text, evidence=False)
                           if s.tier is not None)
            outcomes.append(QueryOutcome(query_id, evalset.qrels.get(query_id, frozenset()), top, raised))
    qrels = {o.query_id: o.relevant for o in outcomes}
    metrics = ranking_metrics({o.query_id: [n for n, _ in o.top] for o in outcomes}, qrels)
    metrics |= threshold_metrics({o.query_id: o.raised for o in outcomes}, qrels)
    positives = sum(1 for o in outcomes if o.relevant)
    return EvalResult(metrics, scorer.thresholds, len(evalset.narratives), len(outcomes), positives,
                      tuple(outcomes), time.perf_counter() - started)


def sweep(result: EvalResult, thresholds: Sequence[float]) -> list[SweepRow]:
    """Recall and precision of alerting at each threshold (one global threshold, no per-narrative ones)."""
    return [_sweep_row(result.outcomes, t) for t in thresholds]


def _sweep_row(outcomes: Sequence[QueryOutcome], threshold: float) -> SweepRow:
    positives = sum(1 for o in outcomes if o.relevant) or 1
    firsts = [(o.top[0][0] in o.relevant) for o in outcomes if o.top and o.top[0][1] >= threshold]
    pairs = {o.query_id: [n for n, score in o.top if score >= threshold] for o in outcomes}
    pair = _recall_precision("pair", pairs, {o.query_id: o.relevant for o in outcomes})
    return SweepRow(
        threshold=threshold,
        recall=sum(firsts) / positives,
        precision=sum(firsts) / len(firsts) if firsts else 0.0,
        pair_recall=pair["pair_recall"],
        pair_precision=pair["pair_precision"],
        alerts=int(pair["pair_pairs"]),
        stray_rate=sum(1 for o in outcomes if _best_stray(o) >= threshold) / (len(outcomes) or 1),
    )


def _best_stray(outcome: QueryOutcome) -> float:
    return max((score for n, score in outcome.top if n not in outcome.relevant), default=-1.0)
