"""Commands for narratives and matching: import, list, show, enable/disable, match, reembed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from alerts.text import printable
from monitor.cli.shown import json_text, plain
from monitor.cli.support import database, err, out, settings_of
from monitor.errors import MonitorError
from monitor.types import Feed, Narrative, Tier

if TYPE_CHECKING:  # the model, numpy and the database load inside the commands that need them
    from monitor.config import Settings
    from monitor.matching.scoring import TextScore
    from monitor.matching.stage import MatchStage

narratives_app = typer.Typer(help="Import, list and switch narratives.", no_args_is_help=True)


@contextmanager
def _stage(ctx: typer.Context) -> Iterator[tuple[Settings, MatchStage]]:
    from monitor.matching.stage import build_stage

    settings = settings_of(ctx)
    with database(settings) as engine:
        yield settings, build_stage(settings, engine)


@narratives_app.command("import")
def narratives_import(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="CSV, JSON, JSONL or YAML file.")]
) -> None:
    """Add or update narratives by id; bad rows are reported by line, valid rows still imported."""
    from monitor.matching.narrative_files import read_narratives

    report = read_narratives(file)
    for problem in report.problems:
        err.print(plain(f"{file}:{problem.line}: {problem.message}"))
    with _stage(ctx) as (settings, stage):
        changed = stage.store.upsert_narratives(report.narratives)
        stage.embed_narratives()
        found = stage.backfill(changed, settings.file.matching.backfill_days)
    out.print(plain(f"Imported {len(report.narratives)} narrative(s) from {file}: {len(changed)} new or "
                    f"changed, {len(report.problems)} problem row(s); {len(found)} match(es) found in "
                    f"the last {settings.file.matching.backfill_days} day(s) of articles."))
    if report.problems:
        raise typer.Exit(1)


@narratives_app.command("list")
def narratives_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Every narrative: id, enabled, threshold, title."""
    with _stage(ctx) as (_settings, stage):
        narratives = stage.store.narratives()
    if as_json:
        sys.stdout.write(json_text([asdict(n) for n in narratives], indent=2) + "\n")
        return
    table = Table("id", "enabled", "threshold", "title", box=None)
    for n in narratives:
        table.add_row(plain(n.id), "yes" if n.enabled else "no",
                      f"{n.threshold:.2f}" if n.threshold is not None else "-", plain(n.title))
    out.print(table)


@narratives_app.command("show")
def narratives_show(ctx: typer.Context, narrative_id: str) -> None:
    """One narrative in full."""
    from storage.feedback_repo import FeedbackStore

    with _stage(ctx) as (_settings, stage):
        narrative = _existing(stage, narrative_id)
        feedback = FeedbackStore(stage.store.engine)
        learned, mutes = feedback.learned(narrative_id), feedback.mutes(datetime.now(UTC))
    for key, value in asdict(narrative).items():
        values = value if isinstance(value, tuple | list) else [value]
        shown = "\n  ".join(printable("" if v is None else str(v), newlines=True) for v in values)
        out.print(Text.assemble((key, "bold"), ": ", shown))
    # Confirmed evidence kept as examples (monitor.feedback); `narratives forget ID N` removes one.
    shown = "\n  ".join(printable(f"[{e.id}] {e.text} (alert {e.alert_id}, {e.added_by}, "
                                  f"{e.added_at:%Y-%m-%d})", newlines=True) for e in learned)
    out.print(Text.assemble(("learned", "bold"), ": ", shown))
    for mute in (m for m in mutes if m.narrative_id == narrative_id):
        out.print(Text.assemble(("muted", "bold"), ": ", printable(
            f"until {mute.until.isoformat(timespec='minutes')} by {mute.by}")))


@narratives_app.command("disable")
def narratives_disable(ctx: typer.Context, narrative_id: str) -> None:
    """Stop matching a narrative (kept in the database)."""
    _switch(ctx, narrative_id, enabled=False)


@narratives_app.command("enable")
def narratives_enable(ctx: typer.Context, narrative_id: str) -> None:
    """Match a disabled narrative again."""
    _switch(ctx, narrative_id, enabled=True)


def _switch(ctx: typer.Context, narrative_id: str, *, enabled: bool) -> None:
    with _stage(ctx) as (_settings, stage):
        if not stage.store.set_enabled(narrative_id, enabled):
            raise MonitorError(f"no narrative with id {narrative_id!r} (see `monitor narratives list`)")
    out.print(plain(f"Narrative {narrative_id} {'enabled' if enabled else 'disabled'}."))


def _existing(stage: MatchStage, narrative_id: str) -> Narrative:
    narrative = stage.store.narrative(narrative_id)
    if narrative is None:
        raise MonitorError(f"no narrative with id {narrative_id!r} (see `monitor narratives list`)")
    return narrative


def match(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="Text to score.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Score this text file.")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Score a web page, or each entry of a feed.")] = None,
    input_: Annotated[Path | None, typer.Option(
        "--input", help='JSONL lines {"id": ..., "text": ...}; prints one JSON line each.')] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Narratives shown per text.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Show the top narratives for texts, scored exactly as the pipeline scores articles."""
    items = _inputs(ctx, text, file, url, input_)
    with _stage(ctx) as (_settings, stage):
        scorer = stage.scorer()
        embedded = scorer.embed_texts([(title, body) for _id, title, body in items])
        results = [(item[0], item[1], scorer.top(e, top)) for item, e in zip(items, embedded, strict=True)]
    for item_id, title, scores in results:
        if input_ is not None:
            sys.stdout.write(json_text({"id": item_id, "matches": [_brief(s) for s in scores]}) + "\n")
        elif as_json:
            sys.stdout.write(json_text({"id": item_id, "title": title,
                                        "matches": [_full(s) for s in scores]}) + "\n")
        else:
            _print_scores(item_id, scores, stage)


def _inputs(
    ctx: typer.Context, text: str | None, file: Path | None, url: str | None, input_: Path | None
) -> list[tuple[Any, str, str]]:
    """(id, title, text) for every text to score, from exactly one source."""
    given = [x for x in (text, file, url, input_) if x is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of TEXT, --file, --url or --input")
    if text is not None:
        return [("text", "", text)]
    if file is not None:
        return [(str(file), "", file.read_text(encoding="utf-8"))]
    if url is not None:
        return _from_url(ctx, url)
    assert input_ is not None
    return _from_jsonl(input_)


def _from_jsonl(path: Path) -> list[tuple[Any, str, str]]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append((row["id"], "", str(row["text"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise MonitorError(f'{path}:{number}: expected {{"id": ..., "text": ...}} ({exc})') from exc
    return items


def _from_url(ctx: typer.Context, url: str) -> list[tuple[Any, str, str]]:
    from monitor.ingest.fetch import Fetcher
    from monitor.ingest.parse import parse_feed
    from monitor.ingest.text import clean_line, html_to_text

    with Fetcher(settings_of(ctx).fetch_options()) as fetcher:
        doc = fetcher.fetch(url)
    try:
        parsed = parse_feed(doc, Feed(id="match", url=url))
    except MonitorError:
        page = doc.body.decode("utf-8", errors="replace")
        title = page.split("<title>", 1)[-1].split("</title>", 1)[0] if "<title>" in page else ""
        return [(url, clean_line(title), html_to_text(page))]
    return [(a.url or a.guid, a.title, a.text) for a in parsed.articles]


def _brief(score: TextScore) -> dict[str, Any]:
    return {"narrative_id": score.narrative_id, "score": round(score.score, 4),
            "alert": score.tier is Tier.ALERT}


def _full(score: TextScore) -> dict[str, Any]:
    return {**_brief(score), "tier": score.tier.value if score.tier else None,
            "cosine": round(score.cosine, 4), "coverage": round(score.coverage, 4),
            "route": score.route, "evidence": score.evidence, "passage": score.passage}


def _print_scores(item_id: Any, scores: list[TextScore], stage: MatchStage) -> None:
    titles = {n.id: n.title for n in stage.store.narratives()}
    columns = ("score", "cosine", "coverage", "route", "tier", "narrative", "evidence")
    table = Table(*columns, title=plain(item_id), box=None)
    for s in scores:
        table.add_row(f"{s.score:.3f}", f"{s.cosine:.3f}", f"{s.coverage:.2f}", s.route,
                      s.tier.value if s.tier else "-",
                      plain(f"{s.narrative_id}\n{titles.get(s.narrative_id, '')}"), plain(s.evidence))
    out.print(table)


def reembed(ctx: typer.Context) -> None:
    """Re-embed every stored article with the configured model (after changing it), and re-match."""
    with _stage(ctx) as (_settings, stage):
        dropped = stage.store.delete_passages(None)
        run = stage.run_pending(alert=False)  # old articles: stored matches, no Slack flood
    out.print(f"Dropped {dropped} stored passage(s); embedded {run.articles} article(s) "
              f"({run.passages} passages) in {run.seconds:.1f} s; {len(run.new_matches)} new match(es).")


def matches(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="How far back, e.g. 1d or 6h.")] = "1d",
    tier: Annotated[str | None, typer.Option("--tier", help="alert or watch (default both).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Stored matches found recently, best first, with the article and the evidence."""
    from monitor.config import parse_duration
    from storage.repo import Repository

    try:
        window = timedelta(seconds=parse_duration(since))
        wanted = Tier(tier) if tier else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with _stage(ctx) as (_settings, stage):
        found = stage.store.matches(since=datetime.now(UTC) - window, tier=wanted)
        articles = dict(Repository(stage.store.engine).articles([m.article_id for m in found]))
        titles = {n.id: n.title for n in stage.store.narratives()}
    if as_json:
        for m in found:
            article = articles[m.article_id]
            sys.stdout.write(json_text({
                "article_id": m.article_id, "article_title": article.title, "article_url": article.url,
                "feed_id": article.feed_id, "published": article.published.isoformat(),
                "narrative_id": m.narrative_id, "score": round(m.score, 4), "tier": m.tier.value,
                "evidence": m.evidence,
            }) + "\n")
        return
    table = Table("score", "tier", "narrative", "article", "evidence", box=None)
    for m in found:
        article = articles[m.article_id]
        narrative = f"{m.narrative_id}\n{titles.get(m.narrative_id, '')}"
        shown = f"{article.title}\n{article.url or ''} ({article.feed_id})"
        table.add_row(f"{m.score:.3f}", m.tier.value, plain(narrative), plain(shown), plain(m.evidence))
    out.print(table)
    out.print(plain(f"{len(found)} match(es) in the last {since}."))
