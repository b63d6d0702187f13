"""`monitor eval`: ranking quality and alert precision/recall on a labelled set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from monitor.cli.support import out, settings_of

if TYPE_CHECKING:
    from monitor.matching.evaluation import EvalSet

SWEEP = [round(0.30 + 0.05 * n, 2) for n in range(13)]


def eval_command(
    ctx: typer.Context,
    checkthat: Annotated[Path | None, typer.Option(
        "--checkthat", help="CheckThat! 2020 Task 2 folder (claims TSV, dev/, train/).")] = None,
    split: Annotated[str, typer.Option("--split", help="dev or train (with --checkthat).")] = "dev",
    narratives: Annotated[Path | None, typer.Option(
        "--narratives", help="Your narratives file (any format `narratives import` reads).")] = None,
    queries: Annotated[Path | None, typer.Option(
        "--queries", help='Your JSONL: {"id", "text", "narratives": [ids]} ([] = must not alert).')] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Ranking depth.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Score a labelled set as the pipeline scores articles (configured model and thresholds)."""
    from monitor.matching.evaluation import build_scorer, evaluate, sweep
    from monitor.matching.index import Thresholds
    from monitor.matching.scoring import Fusion
    from monitor.matching.stage import configured_embedder

    settings = settings_of(ctx)
    evalset = _evalset(checkthat, split, narratives, queries)
    matching = settings.file.matching
    embedder = configured_embedder(settings)
    thresholds = Thresholds(matching.alert_threshold, matching.watch_threshold)
    scorer = build_scorer(embedder, evalset.narratives, thresholds, matching.max_passages,
                          matching.passage_tokens, Fusion(matching.lexical_weight, matching.lexical_floor))
    result = evaluate(scorer, evalset, k=top)
    rows = sweep(result, SWEEP)
    if as_json:
        out.print_json(json.dumps({"model": embedder.model_id, "narratives": result.narratives,
                                   "queries": result.queries, "metrics": dict(result.metrics),
                                   "sweep": [row._asdict() for row in rows]}))
        return
    out.print(f"{result.queries} queries ({result.positives} with a known narrative) against "
              f"{result.narratives} narratives, model {embedder.model_id}, in {result.seconds:.0f} s")
    out.print("  ".join(f"{name} {value:.3f}" for name, value in result.metrics.items()))
    table = Table("threshold", "recall@1", "precision@1", "recall(any)", "precision(pairs)", "alerts",
                  title="alerting at each threshold", box=None)
    for r in rows:
        table.add_row(f"{r.threshold:.2f}", f"{r.recall:.3f}", f"{r.precision:.3f}",
                      f"{r.pair_recall:.3f}", f"{r.pair_precision:.3f}", str(r.alerts))
    out.print(table)


def _evalset(checkthat: Path | None, split: str, narratives: Path | None, queries: Path | None) -> EvalSet:
    from monitor.matching.evaluation import load_checkthat, load_jsonl_set

    if checkthat is not None and narratives is None and queries is None:
        return load_checkthat(checkthat, split)
    if checkthat is None and narratives is not None and queries is not None:
        return load_jsonl_set(narratives, queries)
    raise typer.BadParameter("give --checkthat DIR, or both --narratives and --queries")
