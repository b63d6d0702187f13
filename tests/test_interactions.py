"""Analysts' clicks over HTTP: real signed block_actions POSTed to the running endpoint.

The alert is really posted (slack-sdk -> the Slack stand-in), the clicks are made on the
buttons of the posted message, and the redraw is read back from the stand-in.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.service.clicks import REFUSAL, Access
from monitor.types import AlertStatus, Label

from clickworld import LABS, NATO, ClickWorld, click_request, post
from slackclicks import form_body, signed_request
from slackserver import SlackServer


@pytest.fixture
def slack() -> SlackServer:
    with SlackServer(min_interval=None, usergroups={"S0ANALYSTS": ["U0MEMBER"]}) as server:
        yield server


def buttons(blocks: list[dict[str, object]], block_id: str) -> list[str]:
    """The action_ids of the buttons in one actions block ([] when the block is not there)."""
    for block in blocks:
        if block.get("block_id") == block_id:
            return [str(e["action_id"]) for e in block["elements"]]  # type: ignore[index, union-attr]
    return []


def test_one_article_on_two_narratives_is_one_message_with_buttons_for_each(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = ClickWorld(engine, tmp_path, slack)
    (best, other), message = world.alert_on_both()
    assert buttons(message.blocks, f"alert-{best}") == ["confirm", "false_alarm", "mute"]
    assert buttons(message.blocks, f"alert-{other}") == ["confirm", "false_alarm", "mute"]
    mute = next(e for b in message.blocks if b.get("block_id") == f"alert-{best}" for e in b["elements"]
                if e["action_id"] == "mute")
    assert mute["value"] == str(best) and mute["confirm"]["title"]["text"] == "Mute this narrative?"
    header = message.blocks[0]["text"]["text"]
    scores = {i.narrative_id: world.outbox.content(i.article_id or 0, i.narrative_id or "").score
              for i in world.outbox.items()}
    assert header == (LABS.title if scores["biolabs"] >= scores["nato"] else NATO.title)  # best first
    assert "Also matches:" in message.text
    items = world.outbox.items()
    assert {i.status for i in items} == {AlertStatus.SENT} and {i.ts for i in items} == {message.ts}


def test_a_click_is_stored_once_and_the_message_shows_who_with_an_undo(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = ClickWorld(engine, tmp_path, slack)
    (best, other), message = world.alert_on_both()
    server = world.serve()
    world.clicks.start()
    try:
        payload = slack.click("C0ALERTS", message.ts, "confirm", str(best))
        for _ in range(2):  # a double click: the same payload twice, each freshly signed
            status, took = post(server, *click_request(payload))
            assert status == 200 and took < 3.0
        world.settle()
        assert [(r.label, r.user) for r in world.stored(best)] == [(Label.CONFIRMED, "U0ANALYST")]
        shown = slack.message("C0ALERTS", message.ts)
        assert any("Confirmed by <@U0ANALYST>" in str(b) for b in shown.blocks)
        assert buttons(shown.blocks, f"alert-{best}") == ["undo"]
        assert buttons(shown.blocks, f"alert-{other}") == ["confirm", "false_alarm", "mute"]

        undo = slack.click("C0ALERTS", message.ts, "undo", str(best))
        assert post(server, *click_request(undo))[0] == 200
        world.settle()
        assert world.feedback.outcome(best).label is None and len(world.stored(best)) == 1
        assert buttons(slack.message("C0ALERTS", message.ts).blocks, f"alert-{best}")[0] == "confirm"

        false_alarm = slack.click("C0ALERTS", message.ts, "false_alarm", str(other), user="U0SECOND")
        assert post(server, *click_request(false_alarm))[0] == 200
        world.settle()
        assert world.feedback.outcome(other).label is Label.FALSE_ALARM
        shown = slack.message("C0ALERTS", message.ts)
        assert any("False alarm by <@U0SECOND>" in str(b) for b in shown.blocks)
    finally:
        server.stop()
        world.clicks.stop()


def test_mute_for_the_default_day_then_another_duration_then_undo(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = ClickWorld(engine, tmp_path, slack)
    (best, _other), message = world.alert_on_both()
    narrative = world.feedback.outcome(best).narrative_id
    server = world.serve()
    world.clicks.start()
    try:
        post(server, *click_request(slack.click("C0ALERTS", message.ts, "mute", str(best))))
        world.settle()
        (mute,) = world.feedback.mutes()
        assert mute.narrative_id == narrative and mute.by == "U0ANALYST"
        assert timedelta(hours=23, minutes=59) < mute.until - datetime.now(UTC) <= timedelta(hours=24)
        shown = slack.message("C0ALERTS", message.ts)
        assert buttons(shown.blocks, f"alert-{best}") == ["undo", "mute_for_1h", "mute_for_7d"]
        week = slack.click("C0ALERTS", message.ts, "mute_for_7d", f"{best}:604800")
        post(server, *click_request(week))
        world.settle()
        (mute,) = world.feedback.mutes()
        assert mute.until - datetime.now(UTC) > timedelta(days=6, hours=23)
        post(server, *click_request(slack.click("C0ALERTS", message.ts, "undo", str(best))))
        world.settle()
        assert world.feedback.mutes() == []
    finally:
        server.stop()
        world.clicks.stop()


def test_bad_requests_are_refused_and_store_nothing(
    engine: Engine, tmp_path: Path, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    world = ClickWorld(engine, tmp_path, slack)
    (best, _other), message = world.alert_on_both()
    server = world.serve()
    world.clicks.start()
    good = slack.click("C0ALERTS", message.ts, "false_alarm", str(best))
    test_id = world.outbox.add_test("C0ALERTS")
    body = form_body(good)
    not_actions = {**good, "type": "view_submission"}
    cases = {
        "forged signature": (401, body, signed_request(body, "not-the-signing-secret")),
        "replayed old timestamp": (401, body, signed_request(body, at=time.time() - 301)),
        "unsigned": (401, body, {"Content-Type": "application/x-www-form-urlencoded"}),
        "payload not JSON": (400, *click_request_raw(b"payload=%7Bnot+json")),
        "not a form": (400, *click_request_raw(b"\xff\xfe")),
        "not block_actions": (400, *click_request(not_actions)),
        "malformed alert id": (400, *click_request(with_value(good, "12; DROP TABLE alerts"))),
        "unknown alert id": (404, *click_request(with_value(good, "987654321"))),
        "a test message is no alert": (404, *click_request(with_value(good, str(test_id)))),
    }
    try:
        with caplog.at_level(logging.WARNING, logger="monitor.service.interactions"):
            for name, (expected, data, headers) in cases.items():
                assert post(server, data, headers)[0] == expected, name
        world.settle()
        refusals = [r for r in caplog.records if r.getMessage() == "Slack interaction refused"]
        assert len(refusals) == len(cases)
        assert world.feedback.outcome(best).label is None and world.stored(best) == []
        assert slack.updates == [] and slack.ephemerals == []
        assert post(server, *click_request(good))[0] == 200  # the same click, properly signed, goes through
        world.settle()
        assert world.feedback.outcome(best).label is Label.FALSE_ALARM
    finally:
        server.stop()
        world.clicks.stop()


def test_without_a_signing_secret_everything_is_refused(
    engine: Engine, tmp_path: Path, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    world = ClickWorld(engine, tmp_path, slack)
    (best, _other), message = world.alert_on_both()
    with caplog.at_level(logging.WARNING, logger="monitor.service.interactions"):
        server = world.serve(secret=None)
    try:
        assert "SLACK_SIGNING_SECRET is not set" in caplog.text
        click = slack.click("C0ALERTS", message.ts, "confirm", str(best))
        assert post(server, *click_request(click))[0] == 503
        assert world.stored(best) == []
    finally:
        server.stop()


def test_users_not_allowed_are_told_privately_and_nothing_is_stored(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    access = Access(frozenset({"U0LEAD"}), "S0ANALYSTS", None)
    world = ClickWorld(engine, tmp_path, slack, access=access)
    access.members = world.clicks.responder.group_members
    (best, _other), message = world.alert_on_both()
    server = world.serve()
    world.clicks.start()
    try:
        stranger = slack.click("C0ALERTS", message.ts, "confirm", str(best), user="U0STRANGER")
        assert post(server, *click_request(stranger))[0] == 200  # a genuine request: Slack gets its 200
        world.settle()
        assert world.stored(best) == [] and slack.updates == []
        (refusal,) = slack.ephemerals
        assert (refusal.user, refusal.text, refusal.via) == ("U0STRANGER", REFUSAL, "api")
        member = slack.click("C0ALERTS", message.ts, "confirm", str(best), user="U0MEMBER")  # in the group
        lead = slack.click("C0ALERTS", message.ts, "false_alarm", str(best), user="U0LEAD")  # listed by id
        expected = ((member, "U0MEMBER", Label.CONFIRMED), (lead, "U0LEAD", Label.FALSE_ALARM))
        for payload, user, label in expected:
            post(server, *click_request(payload))
            world.settle()
            outcome = world.feedback.outcome(best)
            assert (outcome.user, outcome.label) == (user, label)
    finally:
        server.stop()
        world.clicks.stop()


def test_without_a_bot_token_the_response_url_answers(
    engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    access = Access(frozenset({"U0LEAD"}))
    world = ClickWorld(engine, tmp_path, slack, token=None, access=access)
    (best, _other), message = world.alert_on_both()
    server = world.serve()
    world.clicks.start()
    try:
        post(server, *click_request(slack.click("C0ALERTS", message.ts, "confirm", str(best), user="U0X")))
        post(server, *click_request(slack.click("C0ALERTS", message.ts, "confirm", str(best), user="U0LEAD")))
        world.settle()
        assert [e.via for e in slack.ephemerals] == ["response_url"]
        assert any("Confirmed by <@U0LEAD>" in str(b) for b in slack.message("C0ALERTS", message.ts).blocks)
    finally:
        server.stop()
        world.clicks.stop()


def with_value(payload: dict[str, object], value: str) -> dict[str, object]:
    actions = json.loads(json.dumps(payload["actions"]))
    actions[0]["value"] = value
    return {**payload, "actions": actions}


def click_request_raw(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed_request(body)


class _NoClicks:
    def known(self, alert_id: int) -> bool:
        return False

    def submit(self, click: object) -> None:
        raise AssertionError("nothing is submitted without a secret")


@pytest.mark.parametrize(("slack_in_use", "level"), [(True, logging.WARNING), (False, logging.INFO)])
def test_a_missing_secret_is_a_warning_only_when_slack_is_configured(
    slack_in_use: bool, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A default install posts alerts to the console: it has no buttons, so no warning at start."""
    from monitor.service.interactions import RequestCheck

    with caplog.at_level(logging.INFO, logger="monitor.service.interactions"):
        RequestCheck(None, _NoClicks(), slack_in_use=slack_in_use)
    assert [(r.levelno, "SLACK_SIGNING_SECRET is not set" in r.getMessage()) for r in caplog.records] == [
        (level, True)]
