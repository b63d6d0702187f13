"""Commands for the alert outbox: deliver it, post a test message, show its state."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from monitor.cli.support import database, out, settings_of

if TYPE_CHECKING:
    from monitor.service.delivery import DeliveryRun

alerts_app = typer.Typer(help="Deliver and test Slack alerts.", no_args_is_help=True)


def describe(run: DeliveryRun) -> str:
    return (f"Delivered {run.sent} alert message(s); {run.retried} to retry, {run.failed} refused "
            f"by Slack.")


@alerts_app.command("deliver")
def alerts_deliver(
    ctx: typer.Context,
    timeout: float = typer.Option(120.0, "--timeout", help="Give up waiting after this many seconds."),
) -> None:
    """Send every pending alert now (waiting out Slack's pacing), then exit."""
    from monitor.flow import make_deliverer
    from storage.outbox import Outbox

    settings = settings_of(ctx)
    with database(settings) as engine:
        run = make_deliverer(settings, engine).flush(timeout)
        pending = Outbox(engine).counts().get("pending", 0)
    out.print(describe(run) + (f" {pending} still pending." if pending else ""))


@alerts_app.command("test")
def alerts_test(
    ctx: typer.Context,
    channel: str | None = typer.Option(None, "--channel", help="Default: [alerts.slack] channel."),
) -> None:
    """Post a test message through the configured Slack connection."""
    from monitor.flow import make_deliverer
    from storage.outbox import Outbox

    settings = settings_of(ctx)
    with database(settings) as engine:
        Outbox(engine).add_test(channel or settings.file.alerts.slack.channel)
        run = make_deliverer(settings, engine).flush(30)
    out.print(describe(run))
    if run.sent == 0:
        raise typer.Exit(1)


@alerts_app.command("status")
def alerts_status(ctx: typer.Context) -> None:
    """How many outbox messages are pending, sent, failed, held or merged."""
    from storage.outbox import Outbox

    settings = settings_of(ctx)
    with database(settings) as engine:
        counts = Outbox(engine).counts()
    out.print(", ".join(f"{status}: {n}" for status, n in sorted(counts.items())) or "outbox empty")
