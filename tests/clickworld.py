"""A monitor that has posted alerts to the Slack stand-in and takes clicks on them (tests only).

    world = ClickWorld(engine, tmp_path, slack)
    alert_ids, message = world.alert_on_both()     # one article, two narratives, one message
    world.post(slack.click("C0ALERTS", message.ts, "confirm", str(alert_ids[0])))
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from alerts.outbox_rules import copy_entries
from alerts.slack import BotSender
from alerts.slack_app import SlackResponder
from monitor.config import Settings, load_settings
from monitor.feedback.service import FeedbackService
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.stage import build_stage
from monitor.service.clicks import Access, ClickService
from monitor.service.delivery import Deliverer
from monitor.service.interactions import PATH, InteractionServer, RequestCheck
from monitor.types import AlertKind, Article, FeedStatus, Narrative
from storage.outbox import Outbox
from storage.repo import Repository

from slackclicks import SIGNING_SECRET, form_body, signed_request
from slackserver import TOKEN, Posted, SlackServer

LABS = Narrative("biolabs", "The United States runs secret biological weapons laboratories in Ukraine.",
                 summary="Pentagon-funded labs are said to develop bioweapons.")
NATO = Narrative("nato", "NATO is encircling Russia with military bases.")
CONFIG = """
[matching]
model = "hashing"
starter_narratives = false

[alerts.slack]
channel = "C0ALERTS"
{slack}

[feeds.wire]
url = "https://wire.example/feed"
name = "Wire Service"
"""


def settings_for(tmp_path: Path, slack: str = "") -> Settings:
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG.format(slack=slack), encoding="utf-8")
    return load_settings(path)


class ClickWorld:
    """Two narratives, a deliverer aimed at the stand-in, and the click service over its database."""

    def __init__(self, engine: Engine, tmp_path: Path, slack: SlackServer, *, token: str | None = TOKEN,
                 access: Access | None = None) -> None:
        self.engine, self.slack = engine, slack
        self.settings = settings_for(tmp_path)
        self.repo = Repository(engine)
        self.repo.sync_feeds(self.settings.feeds())
        self.stage = build_stage(self.settings, engine)
        self.stage.store.upsert_narratives([LABS, NATO])
        self.outbox = Outbox(engine)
        self.feedback = FeedbackService.from_settings(self.settings, engine)
        responder = SlackResponder(token, slack.api_url)
        self.clicks = ClickService(self.feedback, self.outbox, responder, access or Access())

    def publish(self, guid: str, title: str, text: str) -> int:
        now = datetime.now(UTC)
        article = Article("wire", guid, guid_hash(guid), f"https://wire.example/{guid}", title, text, None,
                          "en", now, now, content_hash(title, text))
        state = self.repo.feed_state("wire")
        assert state is not None
        (stored,) = self.repo.record_success(replace(state, status=FeedStatus.OK), [article], copy_entries)
        return stored.id

    def alert_on_both(self) -> tuple[list[int], Posted]:
        """An article that alerts on both narratives, delivered: its alert ids (best first) and message."""
        self.publish("both", LABS.title, NATO.title)
        self.stage.run_pending()
        Deliverer(self.outbox, BotSender(TOKEN, self.slack.api_url), gap=0).flush(10)
        (message,) = self.slack.messages
        assert len(self.outbox.items(AlertKind.ALERT)) == 2
        ordered = [int(b["block_id"].removeprefix("alert-"))
                   for b in message.blocks if b["type"] == "actions"]
        return ordered, message

    def serve(self, secret: str | None = SIGNING_SECRET, clock: Any = time.time) -> InteractionServer:
        check = RequestCheck(secret, self.clicks, clock)
        return InteractionServer("127.0.0.1", 0, check, self.clicks).start()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every accepted click has been handled."""
        deadline = time.monotonic() + timeout
        while not self.clicks.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.clicks.idle()

    def stored(self, alert_id: int) -> list[Any]:
        """Every label the alert was given, history included."""
        return self.feedback.history(alert_id)


def post(server: InteractionServer, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
    """POST to the running endpoint: the HTTP status and how long the answer took, in seconds."""
    host, port = server.address
    request = urllib.request.Request(f"http://{host}:{port}{PATH}", data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, time.monotonic() - started


def click_request(payload: dict[str, Any], secret: str = SIGNING_SECRET,
                  at: float | None = None) -> tuple[bytes, dict[str, str]]:
    """A click as Slack sends it: the form body and its signed headers."""
    body = form_body(payload)
    return body, signed_request(body, secret, at)
