"""Commands for the daily digest: send it, or preview it as HTML."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.shown import plain
from monitor.cli.support import database, out, settings_of

if TYPE_CHECKING:
    from monitor.service.digest_job import DigestService

digest_app = typer.Typer(help="Send or preview the daily digest email.", no_args_is_help=True)


def _day(service: DigestService, value: str | None) -> date:
    if value is None:
        return service.yesterday()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--date") from exc


@digest_app.command("send")
def digest_send(
    ctx: typer.Context,
    day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: yesterday).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Send again even if it was sent.")] = False,
) -> None:
    """Send the digest of a day (once: re-running does nothing unless --force)."""
    from monitor.flow import make_digest_service

    settings = settings_of(ctx)
    with database(settings) as engine:
        service = make_digest_service(settings, engine)
        outcome = service.send(_day(service, day), force=force)
    if outcome.status == "failed":
        # The error may quote the mail server: plain text, never markup.
        out.print(plain(f"Digest for {outcome.period} NOT sent: {outcome.error}. It will be retried."))
        raise typer.Exit(1)
    where = f" to {outcome.destination}" if outcome.destination else ""
    out.print(f"Digest for {outcome.period}: {outcome.status}{where}.")


@digest_app.command("preview")
def digest_preview(
    ctx: typer.Context,
    day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: yesterday).")] = None,
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("digest.html"),
) -> None:
    """Write the digest's HTML to a file to look at; sends nothing."""
    from monitor.flow import make_digest_service

    settings = settings_of(ctx)
    with database(settings) as engine:
        service = make_digest_service(settings, engine)
        written = service.preview(_day(service, day), out_file)
    out.print(f"Wrote {written}")
