"""Feedback from the terminal: label alerts, list and export labels, mute narratives, calibrate."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from monitor.cli.matching import narratives_app
from monitor.cli.shown import json_text, plain
from monitor.cli.support import database, err, out, settings_of
from monitor.errors import MonitorError

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.feedback.service import FeedbackService, LabelOutcome

feedback_app = typer.Typer(help="Label alerts (confirm, false alarm), list and export the labels.",
                           no_args_is_help=True)


class CliLabel(StrEnum):
    CONFIRM = "confirm"
    FALSE_ALARM = "false-alarm"


@contextmanager
def _service(ctx: typer.Context) -> Iterator[tuple[Settings, FeedbackService]]:
    from monitor.feedback.service import FeedbackService

    settings = settings_of(ctx)
    with database(settings) as engine:
        yield settings, FeedbackService.from_settings(settings, engine)


def _user(user: str | None) -> str:
    try:
        return user or getpass.getuser()
    except OSError:  # no login name (a container without one): the label still needs a name
        return "cli"


@feedback_app.command("add")
def feedback_add(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert's id (`monitor feedback list`, Slack).")],
    label: Annotated[CliLabel, typer.Argument(help="confirm or false-alarm.")],
    user: Annotated[str | None, typer.Option("--user", help="Who labels (default: your login).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, in a few words.")] = None,
) -> None:
    """Label an alert, as the Slack buttons do; a repeated label changes nothing."""
    action = "confirm" if label is CliLabel.CONFIRM else "false_alarm"
    with _service(ctx) as (_settings, service):
        outcome = service.record_label(alert_id, action, _user(user), note=note, source="cli")
    _said(outcome)


@feedback_app.command("undo")
def feedback_undo(
    ctx: typer.Context, alert_id: str,
    user: Annotated[str | None, typer.Option("--user", help="Who undoes it (default: your login).")] = None,
) -> None:
    """Clear an alert's current label (its history keeps it)."""
    with _service(ctx) as (_settings, service):
        outcome = service.record_label(alert_id, "undo", _user(user), source="cli")
    _said(outcome)


def _said(outcome: LabelOutcome) -> None:
    about = f"Alert {outcome.alert_id} ({outcome.narrative_id}, article {outcome.article_id})"
    if outcome.label is None:
        state = "has no label"
    else:
        state = f"is labelled {outcome.label.value.replace('_', ' ')} by {outcome.user}"
    suffix = "" if outcome.changed else " (unchanged)"
    learned = (f"; its evidence is learned example {outcome.learned_example_id} of the narrative"
               if outcome.learned_example_id else "")
    out.print(plain(f"{about} {state}{suffix}{learned}."))


@feedback_app.command("list")
def feedback_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Every alert's current label, oldest first."""
    with _service(ctx) as (_settings, service):
        labels = service.store.labels()
    if as_json:
        rows = [{"alert_id": r.alert_id, "article_id": r.article_id, "narrative_id": r.narrative_id,
                 "label": r.label.value, "user": r.user, "at": r.at.isoformat()} for r in labels]
        sys.stdout.write(json_text(rows, indent=2) + "\n")
        return
    table = Table("alert", "article", "narrative", "label", "user", "at", "note", box=None)
    for r in labels:
        table.add_row(str(r.alert_id), str(r.article_id), plain(r.narrative_id), r.label.value,
                      plain(r.user), r.at.isoformat(timespec="seconds"), plain(r.note or ""))
    out.print(table)
    out.print(plain(f"{len(labels)} label(s)."))


@feedback_app.command("export")
def feedback_export(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="The JSONL file to write.")]
) -> None:
    """Write the labelled articles as `monitor eval --queries` reads them."""
    from monitor.feedback.export import eval_queries

    with _service(ctx) as (_settings, service):
        lines = eval_queries(service.store)
    try:
        with file.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    except OSError as exc:
        raise MonitorError(f"cannot write {file}: {exc.strerror or exc}") from exc
    positives = sum(1 for line in lines if line["narratives"])
    out.print(plain(f"Wrote {len(lines)} labelled article(s) to {file} ({positives} confirmed on a "
                    f"narrative, {len(lines) - positives} false alarms only)."))


@narratives_app.command("mute")
def narratives_mute(
    ctx: typer.Context, narrative_id: str,
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 24h, 3d, 90m.")] = "24h",
    user: Annotated[str | None, typer.Option("--user", help="Who mutes it (default: your login).")] = None,
) -> None:
    """Keep a narrative out of Slack for a while (it still reaches the digest)."""
    from monitor.config.values import parse_duration

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--for") from None
    with _service(ctx) as (_settings, service):
        mute = service.mute_narrative(narrative_id, user=_user(user), duration=timedelta(seconds=seconds))
    out.print(plain(f"Narrative {narrative_id} muted until {mute.until.isoformat(timespec='minutes')}."))


@narratives_app.command("unmute")
def narratives_unmute(ctx: typer.Context, narrative_id: str) -> None:
    """Let a muted narrative reach Slack again."""
    with _service(ctx) as (_settings, service):
        ended = service.unmute_narrative(narrative_id)
    out.print(plain(f"Narrative {narrative_id} {'unmuted' if ended else 'was not muted'}."))


@narratives_app.command("forget")
def narratives_forget(ctx: typer.Context, narrative_id: str, example_id: int) -> None:
    """Stop using a learned example (its id is in `monitor narratives show`)."""
    with _service(ctx) as (_settings, service):
        if not service.store.forget(narrative_id, example_id):
            raise MonitorError(f"narrative {narrative_id!r} has no learned example {example_id} "
                               "(see `monitor narratives show`)")
    out.print(plain(f"Learned example {example_id} of {narrative_id} removed; the narrative is "
                    "re-embedded on the next matching pass."))


def calibrate(
    ctx: typer.Context,
    apply: Annotated[bool, typer.Option("--apply", help="Store the proposed thresholds.")] = False,
    min_labels: Annotated[int, typer.Option(
        "--min-labels", min=1, help="Labels a narrative needs before it gets its own threshold.")] = 10,
    precision: Annotated[float, typer.Option(
        "--precision", min=0.0, max=1.0, help="The precision to reach on the labels.")] = 0.9,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Forget the stored global threshold: back to [matching] alert_threshold.")] = False,
) -> None:
    """Propose alert thresholds from the labels, with precision and recall before and after."""
    from monitor.cli.calibrate_view import show_calibration
    from monitor.feedback.calibration import calibrate as propose_thresholds
    from storage.narratives_repo import MatchStore

    with _service(ctx) as (settings, service):
        if reset:
            forgot = service.store.clear_calibrated_alert_threshold()
            out.print(f"Global alert threshold: [matching] alert_threshold "
                      f"{settings.file.matching.alert_threshold:.2f}{'' if forgot else ' (it was already)'}.")
            return
        points = service.store.labelled_scores()
        if not points:
            err.print("No labels yet: label alerts in Slack or with `monitor feedback add` first.")
            return
        configured = settings.file.matching.alert_threshold
        stored = service.store.calibrated_alert_threshold()
        own = MatchStore(service.store.engine).narrative_thresholds()
        result = propose_thresholds(points, stored if stored is not None else configured, own,
                                    min_labels=min_labels, target=precision)
        show_calibration(result, configured, stored, len(points))
        if apply:
            glob = result.global_.after.threshold if result.global_ and result.global_.changed else None
            mine = {p.scope: p.after.threshold for p in result.narratives if p.changed}
            service.store.store_calibration(glob, len(points), mine)
            shown = f"global alert threshold {glob:.3f}" if glob is not None else "global threshold unchanged"
            out.print(plain(f"Stored: {shown}; {len(mine)} narrative threshold(s)."))
