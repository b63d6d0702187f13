"""`monitor storage prune`: the retention job of `monitor run`, by hand."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated

import typer

from monitor.cli.shown import json_text
from monitor.cli.support import database, out, settings_of

storage_app = typer.Typer(help="The database's size over time: retention.", no_args_is_help=True)


@storage_app.command("prune")
def storage_prune(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Delete what [storage] retention and vector_retention let go; keep what is still needed."""
    from monitor.service.retention import prune_now

    settings = settings_of(ctx)
    with database(settings) as engine:
        counts = prune_now(settings, engine)
    if as_json:
        sys.stdout.write(json_text(asdict(counts)) + "\n")
        return
    out.print(f"Pruned {counts.articles} article(s) with {counts.matches} match(es), passage vectors "
              f"of {counts.passages} passage(s), {counts.alerts} settled alert(s).")
