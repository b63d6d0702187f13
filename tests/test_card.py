"""The alert card (one message per article, buttons per narrative) and its delivery as one message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.card import LISTED_OTHERS, alert_card, label_line
from alerts.interactions import InteractionError, click_of
from alerts.slack import BotSender
from monitor.service.delivery import Deliverer
from monitor.types import Action, AlertContent, AlertKind, AlertStatus, CardEntry, CardLabel

from clickworld import LABS, NATO, ClickWorld
from slackserver import TOKEN, SlackServer

WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
CONTENT = AlertContent("biolabs", "Secret biolabs", "Labs said to make weapons.", None, "Labs found",
                       "https://news.example/labs", "Example News", "en", WHEN, 0.84, "alert",
                       "The labs exist.")


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(min_interval=None) as server:
        yield server


def entry(n: int, score: float, label: CardLabel | None = None) -> CardEntry:
    return CardEntry(n, replace(CONTENT, narrative_id=f"n{n}", narrative_title=f"Narrative {n}", score=score),
                     label)


def test_best_narrative_first_others_listed_each_with_its_buttons(slack: SlackServer) -> None:
    message = alert_card([entry(7, 0.71), entry(9, 0.93), entry(8, 0.80)])
    assert message.blocks[0]["text"]["text"] == "Narrative 9"
    actions = [b for b in message.blocks if b["type"] == "actions"]
    assert [b["block_id"] for b in actions] == ["alert-9", "alert-8", "alert-7"]
    for block in actions:
        assert [(e["action_id"], e["value"]) for e in block["elements"]] == [
            (a, block["block_id"].removeprefix("alert-")) for a in ("confirm", "false_alarm", "mute")]
    assert message.text.count("Also matches:") == 2
    BotSender(TOKEN, slack.api_url).post("C0ALERTS", message)  # within every Block Kit limit


def test_many_narratives_stay_within_slack_limits(slack: SlackServer) -> None:
    entries = [entry(n, 0.7 + n / 1000, CardLabel("muted", "U0ANA", WHEN, WHEN) if n % 2 else None)
               for n in range(1, 30)]
    message = alert_card(entries)
    assert len(message.blocks) <= 50
    assert sum(b["type"] == "actions" for b in message.blocks) == LISTED_OTHERS + 1
    assert "+18 more narrative(s)" in str(message.blocks[-1])
    BotSender(TOKEN, slack.api_url).post("C0ALERTS", message)


def test_a_label_shows_who_and_how_and_never_pings() -> None:
    assert label_line(CardLabel("confirmed", "U024BE7LH", WHEN)).startswith(
        ":white_check_mark: Confirmed by <@U024BE7LH>, <!date^1714566600^")
    hostile = label_line(CardLabel("false_alarm", "<!channel> bob", WHEN))
    assert "<!channel>" not in hostile and "&lt;!channel&gt; bob" in hostile
    muted = label_line(CardLabel("muted", "U0ANA", WHEN, WHEN))
    assert muted.startswith(":no_bell: Narrative muted by <@U0ANA>") and "alerts resume" in muted


@pytest.mark.parametrize(("action", "value", "problem"), [
    ("confirm", "0", "malformed alert id"),
    ("confirm", "1.5", "malformed alert id"),
    ("confirm", None, "button has no value"),
    ("mute_for_7d", "5", "malformed mute value"),
    ("mute_for_1y", "5:99999999", "malformed mute value"),  # over 30 days
    ("delete_everything", "5", "unknown action_id"),
])
def test_malformed_clicks_are_named(action: str, value: str | None, problem: str) -> None:
    payload = {"type": "block_actions", "user": {"id": "U0ANA"},
               "actions": [{"action_id": action, "value": value}]}
    with pytest.raises(InteractionError, match=problem) as caught:
        click_of(payload)
    assert caught.value.status == 400


def test_mute_for_reads_its_duration() -> None:
    click = click_of({"type": "block_actions", "user": {"id": "U0ANA"},
                      "actions": [{"action_id": "mute_for_1h", "value": "12:3600"}]})
    assert (click.action, click.alert_id, click.mute_seconds) == (Action.MUTE_FOR, 12, 3600.0)


def test_a_failed_combined_message_is_retried_whole_and_sent_once(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = ClickWorld(engine, tmp_path, slack)
    world.publish("both", LABS.title, NATO.title)
    world.stage.run_pending()
    slack.drop_next(1)  # the connection closes unanswered: Slack may or may not have posted it
    run = Deliverer(world.outbox, BotSender(TOKEN, slack.api_url), gap=0).flush(30)
    assert run.retried == 1 and run.sent == 1
    (message,) = slack.messages
    items = world.outbox.items(AlertKind.ALERT)
    assert [i.status for i in items] == [AlertStatus.SENT] * 2 and {i.ts for i in items} == {message.ts}
    assert sum(b["type"] == "actions" for b in message.blocks) == 2
