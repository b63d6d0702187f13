"""`monitor serve`, and the Slack click handling that `monitor run` starts too.

Two ways in, one click service: `POST /slack/interactions` on `[web] host`/`port`
(SLACK_SIGNING_SECRET checks every request) and, with SLACK_APP_TOKEN set, a Socket Mode
connection. In the distributed deployment `monitor serve` is its own compose service.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import typer

from monitor.cli.support import database, log, on_signals, settings_of

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings
    from monitor.service.clicks import ClickService

SIGNING_ENV = "SLACK_SIGNING_SECRET"
APP_TOKEN_ENV = "SLACK_APP_TOKEN"


def serve(ctx: typer.Context) -> None:
    """Take analysts' clicks on alert buttons (HTTP and/or Socket Mode) until SIGINT/SIGTERM."""
    settings = settings_of(ctx)
    if settings.file.web.port == 0 and not os.environ.get(APP_TOKEN_ENV):
        log.error(f"nothing to serve: [web] port is 0 and {APP_TOKEN_ENV} is not set")
        raise typer.Exit(2)
    stop = threading.Event()
    on_signals(stop, "finishing the clicks taken")
    with database(settings) as engine, slack_interactions(settings, engine):
        stop.wait()


@contextmanager
def slack_interactions(settings: Settings, engine: Engine) -> Iterator[ClickService]:
    """Handle clicks while the block runs: the worker, the HTTP endpoint, Socket Mode if configured.

    An HTTP port that cannot be bound is logged, not fatal, as for the metrics port: Socket
    Mode and `monitor feedback add` still work.
    """
    from monitor.service.interactions import InteractionServer, RequestCheck

    clicks = _click_service(settings, engine).start()
    with ExitStack() as stack:
        stack.callback(clicks.stop)
        web = settings.file.web
        if web.port:
            try:
                check = RequestCheck(os.environ.get(SIGNING_ENV), clicks, slack_in_use=_slack_in_use())
                server = InteractionServer(web.host, web.port, check, clicks).start()
                stack.callback(server.stop)
            except OSError as exc:
                log.error("Slack interactions endpoint not started; set [web] port to a free port (0: off)",
                          extra={"host": web.host, "port": web.port, "error": str(exc)})
        app_token = os.environ.get(APP_TOKEN_ENV)
        if app_token:
            from monitor.service.socket_mode import SocketListener

            listener = SocketListener(app_token, settings.file.alerts.slack.api_url, clicks).start()
            stack.callback(listener.stop)
        yield clicks


def _slack_in_use() -> bool:
    """Whether alerts go to Slack (a token, a webhook or Socket Mode), not to the console."""
    from monitor.flow import TOKEN_ENV, WEBHOOK_ENV

    return any(os.environ.get(name) for name in (TOKEN_ENV, WEBHOOK_ENV, APP_TOKEN_ENV))


def _click_service(settings: Settings, engine: Engine) -> ClickService:
    from alerts.slack_app import SlackResponder
    from monitor.feedback.service import FeedbackService
    from monitor.flow import TOKEN_ENV
    from monitor.service.clicks import Access, ClickService
    from storage.outbox import Outbox

    slack = settings.file.alerts.slack
    responder = SlackResponder(os.environ.get(TOKEN_ENV), slack.api_url)
    access = Access(frozenset(slack.allowed_users), slack.allowed_usergroup, responder.group_members)
    return ClickService(FeedbackService.from_settings(settings, engine), Outbox(engine), responder, access)
