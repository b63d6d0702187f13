"""Socket Mode: slack-sdk's client against a local WebSocket stand-in of Slack, with a drop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.service.socket_mode import SocketListener
from monitor.types import Label

from clickworld import ClickWorld
from slackclicks import APP_TOKEN
from slackserver import SlackServer
from slacksocket import SocketSlack


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(min_interval=None) as server:
        yield server


def test_clicks_over_socket_mode_survive_a_dropped_connection(
    sqlite_engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = ClickWorld(sqlite_engine, tmp_path, slack)
    (best, other), message = world.alert_on_both()
    world.clicks.start()
    with SocketSlack(slack) as socket_slack:
        listener = SocketListener(APP_TOKEN, slack.api_url, world.clicks, ping_interval=0.5).start()
        try:
            socket_slack.wait_connected()
            first = socket_slack.send_interactive(slack.click("C0ALERTS", message.ts, "confirm", str(best)))
            assert socket_slack.wait_ack(first) < 3.0
            world.settle()
            assert world.feedback.outcome(best).label is Label.CONFIRMED
            shown = slack.message("C0ALERTS", message.ts)
            assert any("Confirmed by <@U0ANALYST>" in str(b) for b in shown.blocks)

            socket_slack.drop()
            socket_slack.wait_connected(count=2)  # a new URL from apps.connections.open, a new connection
            second = socket_slack.send_interactive(
                slack.click("C0ALERTS", message.ts, "false_alarm", str(other), user="U0SECOND"))
            socket_slack.wait_ack(second)
            world.settle()
            assert world.feedback.outcome(other).label is Label.FALSE_ALARM

            bad = socket_slack.send_interactive({"type": "block_actions", "actions": [
                {"action_id": "confirm", "value": "not-an-id"}], "user": {"id": "U0ANALYST"}})
            socket_slack.wait_ack(bad)  # acknowledged (so Slack does not retry it), then refused
            time.sleep(0.2)
            world.settle()
            assert [len(world.stored(i)) for i in (best, other)] == [1, 1]
        finally:
            listener.stop()
            world.clicks.stop()


def test_a_slack_not_reachable_at_start_is_retried(
    sqlite_engine: Engine, tmp_path: Path, slack: SlackServer
) -> None:
    world = ClickWorld(sqlite_engine, tmp_path, slack)
    listener = SocketListener(APP_TOKEN, slack.api_url, world.clicks, ping_interval=0.5).start()
    try:
        time.sleep(0.3)  # apps.connections.open fails: no socket URL to hand out yet
        assert not listener.connected()
        with SocketSlack(slack) as socket_slack:
            socket_slack.wait_connected()
    finally:
        listener.stop()
