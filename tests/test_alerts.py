"""Alerts end to end: matches -> outbox -> the real slack-sdk client -> a loopback Slack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from alerts.outbox_rules import copy_entries
from alerts.slack import BotSender, WebhookSender
from monitor.config import Settings, load_settings
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.stage import MatchStage, build_stage
from monitor.service.delivery import Deliverer
from monitor.types import AlertKind, AlertStatus, Article, FeedStatus, Narrative
from storage.db import open_engine, upgrade
from storage.outbox import Outbox
from storage.repo import Repository

from slackserver import TOKEN, SlackServer

BIOLABS = Narrative("biolabs", "The United States runs secret biological weapons laboratories in Ukraine.",
                    summary="Pentagon-funded labs are said to develop bioweapons.", tags=("health",))
NATO = Narrative("nato", "NATO is encircling Russia with military bases.", tags=("nato",))
CONFIG = """
[matching]
model = "hashing"
starter_narratives = false

[alerts]
flood_limit = {flood}

[alerts.slack]
channel = "C0ALERTS"

[[alerts.slack.routes]]
channel = "C0WATCH"
narrative_tags = ["nato"]

[feeds.wire]
url = "https://wire.example/feed"
name = "Wire Service"

[feeds.daily]
url = "https://daily.example/feed"
name = "The Daily"
"""


def settings_for(tmp_path: Path, flood: int = 10) -> Settings:
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG.format(flood=flood), encoding="utf-8")
    return load_settings(path)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


class World:
    """A database with two feeds, the matching stage and a deliverer aimed at the stand-in."""

    def __init__(self, engine: Engine, settings: Settings, slack: SlackServer, webhook: bool = False) -> None:
        self.repo = Repository(engine)
        self.repo.sync_feeds(settings.feeds())
        self.stage: MatchStage = build_stage(settings, engine)
        self.stage.store.upsert_narratives([BIOLABS, NATO])
        self.outbox = Outbox(engine)
        sender = WebhookSender(slack.webhook_url) if webhook else BotSender(TOKEN, slack.api_url)
        self.deliverer = Deliverer(self.outbox, sender, gap=1.0)

    def publish(self, feed_id: str, guid: str, title: str, text: str = "", url: str | None = None) -> int:
        now = datetime.now(UTC)
        article = Article(feed_id, guid, guid_hash(guid), url or f"https://{feed_id}.example/{guid}", title,
                          text, None, "en", now, now, content_hash(title, text))
        state = self.repo.feed_state(feed_id)
        assert state is not None
        (stored,) = self.repo.record_success(replace(state, status=FeedStatus.OK), [article], copy_entries)
        return stored.id


def titles(slack: SlackServer, channel: str) -> list[str]:
    return [m.text for m in slack.messages_in(channel) if m.thread_ts is None]


def test_each_alert_arrives_once_on_its_routed_channel(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = World(engine, settings_for(tmp_path), slack)
    for n in range(3):
        world.publish("wire", f"b{n}", f"{BIOLABS.title} Report {n}.", "Officials repeated the claim.")
    world.publish("daily", "n1", NATO.title + " Again.", "")
    run = world.stage.run_pending()
    assert len(run.new_matches) == 4
    world.deliverer.flush(30)
    assert len(titles(slack, "C0ALERTS")) == 3
    assert len(titles(slack, "C0WATCH")) == 1  # routed by the narrative's tag
    assert world.stage.run_pending().new_matches == ()  # nothing new: nothing enqueued again
    world.deliverer.flush(5)
    assert len(slack.messages) == 4
    sent = [i for i in world.outbox.items(AlertKind.ALERT) if i.status is AlertStatus.SENT]
    assert len(sent) == 4 and all(i.ts for i in sent)


def test_rate_limits_errors_and_drops_are_retried_without_duplicates(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = World(engine, settings_for(tmp_path), slack)
    world.deliverer.gap = 0.1  # faster than Slack allows: the stand-in answers 429
    for n in range(4):
        world.publish("wire", f"b{n}", f"{BIOLABS.title} Item {n}.")
    world.stage.run_pending()
    slack.fail_next(2, status=500)
    slack.drop_next(1)
    run = world.deliverer.flush(60)
    assert run.retried >= 3
    texts = titles(slack, "C0ALERTS")
    assert len(texts) == 4 and len(set(texts)) == 4
    assert world.outbox.counts() == {"sent": 4}


def test_syndicated_copy_becomes_a_threaded_reply(engine: Engine, tmp_path: Path, slack: SlackServer) -> None:
    world = World(engine, settings_for(tmp_path), slack)
    story = "https://news.example/biolabs-story"
    world.publish("wire", "w1", BIOLABS.title, "Officials repeated the claim.", url=story)
    world.stage.run_pending()
    world.deliverer.flush(10)
    (alert,) = slack.messages_in("C0ALERTS")
    world.publish("daily", "d1", BIOLABS.title + "!", "", url=story)  # same URL, another outlet
    world.publish("daily", "d2", BIOLABS.title, "Officials repeated the claim.", url="https://daily.example/x")
    world.stage.run_pending()
    world.deliverer.flush(10)
    replies = slack.thread(alert.ts)
    assert len(replies) == 2 and all("The Daily" in r.text for r in replies)
    assert len(titles(slack, "C0ALERTS")) == 1


def test_copies_stored_before_matching_are_replies_too(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = World(engine, settings_for(tmp_path), slack)
    story = "https://news.example/biolabs-story"
    world.publish("wire", "w1", BIOLABS.title, "Officials repeated the claim.", url=story)
    world.publish("daily", "d1", BIOLABS.title, "", url=story)  # polled in the same round
    world.publish("wire", "w2", BIOLABS.title, "Officials repeated the claim.", url="https://w.example/2")
    world.stage.run_pending()
    world.deliverer.flush(10)
    (alert,) = [m for m in slack.messages if m.thread_ts is None]
    assert ["The Daily" in r.text for r in slack.thread(alert.ts)] == [True]  # not "Wire" itself


def test_old_articles_do_not_alert(engine: Engine, tmp_path: Path, slack: SlackServer) -> None:
    world = World(engine, settings_for(tmp_path), slack)
    article_id = world.publish("wire", "old", BIOLABS.title, "From the archive.")
    with world.repo.engine.begin() as connection:
        connection.execute(text("UPDATE articles SET published_at = :when WHERE id = :id"),
                           {"when": datetime.now(UTC) - timedelta(days=5), "id": article_id})
    assert len(world.stage.run_pending().new_matches) == 1
    assert world.outbox.counts() == {}


def test_near_identical_text_is_one_story(engine: Engine, tmp_path: Path, slack: SlackServer) -> None:
    world = World(engine, settings_for(tmp_path), slack)
    world.publish("wire", "w1", BIOLABS.title, "Officials in Moscow repeated the claim on Monday.")
    world.publish("daily", "d1", BIOLABS.title, "Officials in Moscow repeated the claim on Monday!!")
    world.stage.run_pending()
    world.deliverer.flush(10)
    (alert,) = [m for m in slack.messages_in("C0ALERTS") if m.thread_ts is None]
    assert len(slack.thread(alert.ts)) == 1


def test_webhook_counts_copies_in_the_alert(engine: Engine, tmp_path: Path, slack: SlackServer) -> None:
    world = World(engine, settings_for(tmp_path), slack, webhook=True)
    world.publish("wire", "w1", BIOLABS.title, "Officials repeated the claim.", url="https://n.example/s")
    world.stage.run_pending()
    world.publish("daily", "d1", BIOLABS.title, "Officials repeated the claim.", url="https://n.example/s")
    world.deliverer.flush(10)
    (message,) = slack.messages
    assert "The Daily" in message.text and message.via == "webhook"
    assert world.outbox.counts() == {"sent": 1, "merged": 1}


def test_flood_guard_sends_one_summary(engine: Engine, tmp_path: Path, slack: SlackServer) -> None:
    world = World(engine, settings_for(tmp_path, flood=2), slack)
    for n in range(5):
        world.publish("wire", f"b{n}", f"{BIOLABS.title} Version {n}.", f"Claim number {n} in other words.")
    world.stage.run_pending()
    counts = world.outbox.counts()
    assert counts == {"pending": 3, "held": 3}  # 2 alerts and the summary; 3 held back
    summary = next(i for i in world.outbox.items(AlertKind.SUMMARY))
    world.outbox.settle(summary.id, AlertStatus.PENDING, retry_at=datetime.now(UTC))  # window closes now
    world.deliverer.flush(15)
    messages = slack.messages_in("C0ALERTS")
    assert len(messages) == 3
    assert sum("Version" in m.text for m in messages[:2]) == 2
    assert "3" in messages[2].text
    assert world.outbox.counts() == {"sent": 3, "merged": 3}


def test_hostile_titles_are_neutralised(engine: Engine, tmp_path: Path, slack: SlackServer) -> None:
    world = World(engine, settings_for(tmp_path), slack)
    world.publish("wire", "h1", f"<!channel> <@U024BE7LH> {BIOLABS.title} <https://evil.example|click>")
    world.stage.run_pending()
    world.deliverer.flush(10)
    (message,) = slack.messages
    payload = message.text + str(message.blocks)
    assert "<!channel>" not in payload and "<@U024BE7LH>" not in payload
    assert "<https://evil.example|click>" not in payload
    assert "&lt;!channel&gt;" in payload


def cli(config: Path, database: str, *args: str, token: str = TOKEN) -> subprocess.Popen[str]:
    env = {**os.environ, "MONITOR_DATABASE_URL": database, "SLACK_BOT_TOKEN": token, "COLUMNS": "200"}
    env.pop("SLACK_WEBHOOK_URL", None)
    return subprocess.Popen([sys.executable, "-m", "monitor.cli.main", "--config", str(config), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def configured(tmp_path: Path, slack: SlackServer) -> Path:
    path = tmp_path / "feeds.toml"
    text = CONFIG.format(flood=50)
    text = text.replace('channel = "C0ALERTS"\n', f'channel = "C0ALERTS"\napi_url = "{slack.api_url}"\n')
    path.write_text(text, encoding="utf-8")
    return path


def test_alerts_test_command(tmp_path: Path, slack: SlackServer) -> None:
    config, database = configured(tmp_path, slack), f"sqlite:///{tmp_path / 'm.db'}"
    out, err = cli(config, database, "alerts", "test").communicate(timeout=60)
    assert "Delivered 1 alert message(s)" in out, err
    assert [m.channel for m in slack.messages] == ["C0ALERTS"]
    bad = cli(config, database, "alerts", "test", token="xoxb-wrong")
    out, err = bad.communicate(timeout=60)
    assert bad.returncode == 1 and "invalid_auth" in err


def test_killed_deliverer_resends_nothing_acknowledged(tmp_path: Path, slack: SlackServer) -> None:
    config, database = configured(tmp_path, slack), f"sqlite:///{tmp_path / 'm.db'}"
    engine = open_engine(database)
    upgrade(engine)
    world = World(engine, load_settings(config), slack)
    for n in range(8):
        world.publish("wire", f"b{n}", f"{BIOLABS.title} Dispatch {n}.", f"Unique detail number {n}.")
    assert len(world.stage.run_pending().new_matches) == 8
    process = cli(config, database, "alerts", "deliver")  # paced at one message a second
    deadline = time.monotonic() + 60
    while len(slack.messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    sent = [i for i in world.outbox.items(AlertKind.ALERT) if i.status is AlertStatus.SENT]
    acknowledged = {dispatch(a.title) for _id, a in world.repo.articles([i.article_id or 0 for i in sent])}
    assert len(acknowledged) >= 2
    out, err = cli(config, database, "alerts", "deliver").communicate(timeout=120)
    assert "still pending" not in out, err
    posted = [dispatch(m.text) for m in slack.messages]
    assert all(posted.count(n) == 1 for n in acknowledged)  # nothing acknowledged is sent again
    assert set(posted) == set(range(8))  # and nothing is lost
    assert len(posted) <= 9  # at most the one message in flight at the kill, twice
    engine.dispose()


def dispatch(text: str) -> int:
    """The number in "... Dispatch 3." of a test article's title or alert."""
    return int(text.split("Dispatch ", 1)[1].split(".", 1)[0])
