"""Commands for the alert outbox: deliver it, post a test message, show its state."""

from __future__ import annotations

import os

import typer
from sqlalchemy import Engine

from alerts.slack import BotSender, ConsoleSender, SlackSender, WebhookSender
from monitor.cli.support import database, out, settings_of
from monitor.config import Settings
from monitor.service.delivery import Deliverer, DeliveryRun
from storage.outbox import Outbox

TOKEN_ENV = "SLACK_BOT_TOKEN"
WEBHOOK_ENV = "SLACK_WEBHOOK_URL"

alerts_app = typer.Typer(help="Deliver and test Slack alerts.", no_args_is_help=True)


def make_sender(settings: Settings) -> SlackSender:
    """The bot token wins, then the webhook; without either, alerts go to the log."""
    token, webhook = os.environ.get(TOKEN_ENV), os.environ.get(WEBHOOK_ENV)
    if token:
        return BotSender(token, settings.file.alerts.slack.api_url)
    if webhook:
        return WebhookSender(webhook)
    return ConsoleSender()


def make_deliverer(settings: Settings, engine: Engine) -> Deliverer:
    return Deliverer(Outbox(engine), make_sender(settings),
                     flood_window=settings.file.alerts.flood_window)


def describe(run: DeliveryRun) -> str:
    return (f"Delivered {run.sent} alert message(s); {run.retried} to retry, {run.failed} refused "
            f"by Slack.")


@alerts_app.command("deliver")
def alerts_deliver(
    ctx: typer.Context,
    timeout: float = typer.Option(120.0, "--timeout", help="Give up waiting after this many seconds."),
) -> None:
    """Send every pending alert now (waiting out Slack's pacing), then exit."""
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
    settings = settings_of(ctx)
    with database(settings) as engine:
        counts = Outbox(engine).counts()
    out.print(", ".join(f"{status}: {n}" for status, n in sorted(counts.items())) or "outbox empty")
