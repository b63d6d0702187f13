"""What labels and mutes do to alerts, end to end: pipeline -> outbox -> slack-sdk -> the Slack stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.digest import render_digest
from alerts.digest_build import build_digest, period_of
from alerts.outbox_rules import copy_entries
from alerts.slack import BotSender
from monitor.config import load_settings
from monitor.feedback.service import FeedbackService
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.stage import build_stage
from monitor.service.delivery import Deliverer
from monitor.types import AlertKind, AlertStatus, Article, FeedStatus, Narrative
from storage.digest_repo import DigestStore
from storage.outbox import Outbox
from storage.repo import Repository

from slackserver import TOKEN, SlackServer

BIOLABS = Narrative("biolabs", "The United States runs secret biological weapons laboratories in Ukraine.")
CONFIG = """
[matching]
model = "hashing"
starter_narratives = false

[alerts.slack]
channel = "C0ALERTS"

[feeds.wire]
url = "https://wire.example/feed"
name = "Wire Service"

[feeds.daily]
url = "https://daily.example/feed"
name = "The Daily"
"""
STORY = "https://news.example/biolabs-story"
LEAD = "Officials in Moscow repeated the claim on Monday."


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


class World:
    """Two feeds, the matching stage, a deliverer aimed at the stand-in, and the feedback service."""

    def __init__(self, engine: Engine, tmp_path: Path, slack: SlackServer) -> None:
        path = tmp_path / "feeds.toml"
        path.write_text(CONFIG, encoding="utf-8")
        settings = load_settings(path)
        self.repo = Repository(engine)
        self.repo.sync_feeds(settings.feeds())
        self.stage = build_stage(settings, engine)
        self.stage.store.upsert_narratives([BIOLABS])
        self.outbox = Outbox(engine)
        self.deliverer = Deliverer(self.outbox, BotSender(TOKEN, slack.api_url), gap=0.0)
        self.feedback = FeedbackService.from_settings(settings, engine)
        self.engine = engine

    def publish(self, feed_id: str, guid: str, title: str, text: str = "", url: str | None = None) -> int:
        now = datetime.now(UTC)
        article = Article(feed_id, guid, guid_hash(guid), url or f"https://{feed_id}.example/{guid}", title,
                          text, None, "en", now, now, content_hash(title, text))
        state = self.repo.feed_state(feed_id)
        assert state is not None
        (stored,) = self.repo.record_success(replace(state, status=FeedStatus.OK), [article], copy_entries)
        return stored.id

    def cycle(self) -> None:
        self.stage.run_pending()
        self.deliverer.flush(10)


def top_level(slack: SlackServer) -> list[str]:
    return [m.text for m in slack.messages_in("C0ALERTS") if m.thread_ts is None]


def test_a_false_alarm_and_its_copies_never_reach_slack_again(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = World(engine, tmp_path, slack)
    world.publish("wire", "w1", BIOLABS.title, LEAD, url=STORY)
    world.cycle()
    (first,) = slack.messages_in("C0ALERTS")
    (alert,) = world.outbox.items(AlertKind.ALERT)
    world.publish("daily", "d0", BIOLABS.title + "!", "", url=STORY)  # a copy queued before the click
    assert [i.kind for i in world.outbox.items() if i.status is AlertStatus.PENDING] == [AlertKind.REPLY]
    world.feedback.record_label(alert.id, "false_alarm", "U1", source="slack")
    world.publish("daily", "d1", BIOLABS.title + "?", "", url=STORY)  # syndicated: same URL
    world.publish("daily", "d2", BIOLABS.title, LEAD + "!!", url="https://daily.example/d2")  # same lead
    world.cycle()
    assert slack.thread(first.ts) == [] and len(top_level(slack)) == 1
    assert world.outbox.counts() == {"sent": 1, "suppressed": 1}
    # Other wordings of the narrative still alert: only that story was a false alarm.
    world.publish("wire", "w2", BIOLABS.title + " Report 2.", "Another outlet cited officials in Kyiv.")
    world.cycle()
    assert len(top_level(slack)) == 2


def test_a_muted_narrative_stays_out_of_slack_but_reaches_the_digest(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = World(engine, tmp_path, slack)
    world.publish("wire", "w1", BIOLABS.title, LEAD)
    world.stage.run_pending()  # queued, not delivered yet: the mute holds it back too
    world.feedback.mute_narrative(BIOLABS.id, user="U1")
    world.publish("wire", "w2", BIOLABS.title + " Report 2.", "Another outlet cited officials in Kyiv.")
    world.cycle()
    assert slack.messages == [] and world.outbox.counts() == {"suppressed": 1}
    digest = build_digest(DigestStore(engine), period_of(datetime.now(UTC).date(), "UTC"))
    (line,) = digest.narratives
    assert (line.narrative_id, line.articles, line.alerts) == (BIOLABS.id, 2, 2)
    assert world.feedback.unmute_narrative(BIOLABS.id)
    world.publish("daily", "d3", BIOLABS.title + " Report 3.", "A third outlet quoted a minister.")
    world.cycle()
    assert len(top_level(slack)) == 1


def test_the_digest_counts_the_weeks_labels_and_measures_precision(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = World(engine, tmp_path, slack)
    for n in range(3):
        world.publish("wire", f"w{n}", f"{BIOLABS.title} Report {n}.", f"Outlet {n} quoted a minister.")
    world.cycle()
    first, second, third = (i.id for i in world.outbox.items(AlertKind.ALERT))
    world.feedback.record_label(first, "confirm", "U1")
    world.feedback.record_label(second, "confirm", "U1")
    world.feedback.record_label(third, "false_alarm", "U2")
    world.feedback.record_label(second, "confirm", "U1")  # a double click counts once
    digest = build_digest(DigestStore(engine), period_of(datetime.now(UTC).date(), "UTC"))
    (line,) = digest.narratives
    assert (line.confirmed_week, line.false_alarms_week, digest.precision_week) == (2, 1, 2 / 3)
    message = render_digest(digest, subject="Digest", sender="monitor@example.org", recipients=[])
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    words = " ".join(text.get_content().split())  # the text part is wrapped at 80 columns
    assert "Labelled this week: 2 confirmed, 1 false alarm" in words
    assert "over the last 7 days: 67% (2 of 3 labelled alerts confirmed)" in words
    assert "Labelled this week: 2 confirmed, 1 false alarm" in html.get_content()
