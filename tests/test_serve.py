"""`monitor serve` as a user runs it, and the settings it reads ([web], allowed users)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.service.interactions import InteractionServer
from monitor.types import Label
from storage.db import open_engine, upgrade

from clickworld import ClickWorld, click_request, post
from slackclicks import SIGNING_SECRET
from slackserver import TOKEN, SlackServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class _Address:
    """What `post` needs of a server: where it listens."""

    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)


def test_monitor_serve_takes_signed_clicks_and_stops_on_sigterm(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    engine = open_engine(database)
    upgrade(engine)
    port = free_port()
    with SlackServer(min_interval=None) as slack:
        world = ClickWorld(engine, tmp_path, slack)
        (best, _other), message = world.alert_on_both()
        config = tmp_path / "feeds.toml"
        config.write_text(config.read_text().replace(
            'channel = "C0ALERTS"\n', f'channel = "C0ALERTS"\napi_url = "{slack.api_url}"\n'
        ) + f'\n[web]\nport = {port}\n', encoding="utf-8")
        env = {**os.environ, "MONITOR_DATABASE_URL": database, "SLACK_BOT_TOKEN": TOKEN,
               "SLACK_SIGNING_SECRET": SIGNING_SECRET}
        env.pop("SLACK_APP_TOKEN", None)
        command = [sys.executable, "-m", "monitor.cli.main", "--config", str(config), "serve"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        try:
            wait_for_port(port, process)
            server: InteractionServer = _Address(port)  # type: ignore[assignment]
            click = slack.click("C0ALERTS", message.ts, "confirm", str(best))
            status, took = post(server, *click_request(click))
            assert status == 200 and took < 3.0
            assert post(server, *click_request(click, secret="forged"))[0] == 401
            deadline = time.monotonic() + 20
            while not slack.updates and time.monotonic() < deadline:
                time.sleep(0.05)
            assert world.feedback.outcome(best).label is Label.CONFIRMED
            assert any("Confirmed by" in str(b) for b in slack.message("C0ALERTS", message.ts).blocks)
        finally:
            process.send_signal(signal.SIGTERM)
            _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Slack interaction refused" in err and "signature does not match" in err
    engine.dispose()


@pytest.mark.parametrize(("toml", "problem"), [
    ("[web]\nport = 70000\n", "web.port: "),
    ("[web]\nhost = \"bad host\"\n", "web.host: must be an IP address or host name"),
    ("[alerts.slack]\nallowed_users = [\"ana\"]\n", "alerts.slack.allowed_users.0: must be Slack user ids"),
    ("[alerts.slack]\nallowed_usergroup = \"U123\"\n", "allowed_usergroup: must be a Slack user group"),
    ("[alerts.slack]\nsigning_secret = \"x\"\n", "secrets come from the environment: SLACK_SIGNING_SECRET"),
    ("[alerts.slack]\napp_token = \"xapp-1\"\n", "secrets come from the environment: SLACK_APP_TOKEN"),
])
def test_web_and_access_settings_are_validated(tmp_path: Path, toml: str, problem: str) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert problem in str(caught.value) and str(path) in str(caught.value)


def test_web_defaults_and_access_lists(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[alerts.slack]\nallowed_users = ["U0ANA", "W0BOB"]\nallowed_usergroup = "S0DESK"\n',
                    encoding="utf-8")
    settings = load_settings(path)
    assert (settings.file.web.host, settings.file.web.port) == ("127.0.0.1", 9471)
    assert settings.file.alerts.slack.allowed_users == ("U0ANA", "W0BOB")
    assert settings.file.alerts.slack.allowed_usergroup == "S0DESK"
