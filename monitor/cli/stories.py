"""Commands for stories: update them now, list and show them, promote one to a narrative."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.shown import json_text, plain
from monitor.cli.support import database, out, settings_of
from monitor.errors import MonitorError

if TYPE_CHECKING:
    from monitor.stories.update import StoryRun
    from monitor.types import Story

stories_app = typer.Typer(help="Stories told by several outlets, and which are emerging.",
                          no_args_is_help=True)


@stories_app.command("update")
def stories_update(ctx: typer.Context) -> None:
    """Cluster the window's articles into stories now (`monitor run` repeats it every stories.interval)."""
    from monitor.stories.update import build_updater

    settings = settings_of(ctx)
    with database(settings) as engine:
        run = build_updater(settings, engine).run()
    out.print(describe_run(run))


def describe_run(run: StoryRun) -> str:
    """One line on what an update did."""
    return (f"Stories updated in {run.seconds:.1f} s: {run.articles} article(s) in the window "
            f"({run.new} new), {run.stories} live stor{'y' if run.stories == 1 else 'ies'} "
            f"({run.created} new, {run.merged} merged), {run.emerging} emerging.")


@stories_app.command("list")
def stories_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    emerging: Annotated[bool, typer.Option("--emerging", help="Only emerging stories.")] = False,
    everything: Annotated[bool, typer.Option("--all", help="Also ended and merged stories.")] = False,
) -> None:
    """Live stories, the latest first: id, size, outlets, growth, nearest narrative, label."""
    from storage.stories_repo import StoryStore

    settings = settings_of(ctx)
    with database(settings) as engine:
        stories = StoryStore(engine).stories(active_only=not everything, emerging_only=emerging)
    if as_json:
        sys.stdout.write(json_text([story_json(s) for s in stories], indent=2) + "\n")
        return
    table = Table("id", "size", "outlets", "growth", "emerging", "narrative", "label", box=None)
    for s in stories:
        narrative = f"{s.narrative_id} {s.narrative_score:.2f}" if s.narrative_id and s.narrative_score else (
            s.narrative_id or "-")
        table.add_row(str(s.id), str(s.size), str(len(s.outlets)), f"+{s.growth}",
                      "yes" if s.emerging else "", plain(narrative), plain(s.label))
    out.print(table)


def story_json(s: Story, *, full: bool = False) -> dict[str, Any]:
    """A story as `stories list --json` prints it (`full`: with history and titles, for `show`)."""
    data: dict[str, Any] = {
        "id": s.id, "label": s.label, "size": s.size, "outlets": len(s.outlets), "urls": list(s.urls),
        "narrative_id": s.narrative_id, "emerging": s.emerging, "narrative_score": s.narrative_score,
        "sources": s.sources, "growth": s.growth, "outlet_names": list(s.outlets), "terms": list(s.terms),
        "languages": list(s.languages), "tags": list(s.tags), "first_seen": _iso(s.first_seen),
        "last_seen": _iso(s.last_seen), "status": s.status, "merged_into": s.merged_into,
        "merged_from": list(s.merged_from), "split_from": s.split_from, "promoted_to": s.promoted_to,
    }
    if full:
        data["history"] = [{"hour": _iso(hour), "size": size} for hour, size in s.history]
        data["titles"] = list(s.titles)
    return data


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@stories_app.command("show")
def stories_show(
    ctx: typer.Context,
    story_id: Annotated[int, typer.Argument(help="Story id (see `monitor stories list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One story: label, terms, outlets, languages, narrative, growth, history and members."""
    story = _story(ctx, story_id)
    if as_json:
        sys.stdout.write(json_text(story_json(story, full=True), indent=2) + "\n")
        return
    fields = story_json(story, full=True)
    for key in ("id", "label", "status", "size", "sources", "growth", "emerging", "narrative_id",
                "narrative_score", "first_seen", "last_seen", "merged_into", "merged_from", "split_from",
                "promoted_to"):
        out.print(Text.assemble((key, "bold"), ": ", plain(_shown(fields[key]))))
    for key in ("terms", "outlet_names", "languages", "tags"):
        out.print(Text.assemble((key, "bold"), ": ", plain(", ".join(fields[key]) or "-")))
    out.print(Text.assemble(("history (UTC hour=size)", "bold"), ": ", ", ".join(
        f"{h['hour'][5:16].replace('T', ' ')}={h['size']}" for h in fields["history"]) or "-"))
    out.print(Text("members:", style="bold"))
    for title, url in story.articles:
        out.print(plain(f"  {title}" + (f"\n    {url}" if url else "")))


def _shown(value: object) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _story(ctx: typer.Context, story_id: int) -> Story:
    from storage.stories_repo import StoryStore

    settings = settings_of(ctx)
    with database(settings) as engine:
        story = StoryStore(engine).story(story_id)
    if story is None:
        raise MonitorError(f"no story with id {story_id} (see `monitor stories list`)")
    return story


def promote(
    ctx: typer.Context,
    story_id: Annotated[int, typer.Argument(help="Story id (see `monitor stories list`).")],
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Also write it as a YAML file to edit and re-import.")] = None,
) -> None:
    """Turn a story into a narrative (title from its representative headline, examples from its members)."""
    from monitor.matching.stage import build_stage
    from monitor.stories.promote import story_narrative, write_narrative_file
    from storage.stories_repo import StoryStore

    settings = settings_of(ctx)
    with database(settings) as engine:
        stories = StoryStore(engine)
        story = stories.story(story_id)
        if story is None:
            raise MonitorError(f"no story with id {story_id} (see `monitor stories list`)")
        narrative = story_narrative(story)
        stage = build_stage(settings, engine)
        changed = stage.store.upsert_narratives([narrative])
        stage.embed_narratives()  # from now on, the next article telling it is matched and alerts
        found = stage.backfill(changed, settings.file.matching.backfill_days)
        stories.set_promoted(story_id, narrative.id)
    if out_file is not None:
        write_narrative_file(narrative, out_file)
    out.print(plain(f"Story {story_id} promoted to narrative {narrative.id}: {narrative.title}"))
    out.print(plain(f"{len(narrative.examples)} example(s) from its members; {len(found)} match(es) found "
                    f"in the last {settings.file.matching.backfill_days} day(s) of articles."))
    where = f"edit {out_file} and run `monitor narratives import {out_file}`" if out_file else (
        f"`monitor narratives show {narrative.id}`; re-import it edited (any format) under the same id")
    out.print(plain(f"Ready to edit: {where}."))
