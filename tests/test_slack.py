"""Slack alerts: messages built from hostile input, delivered by slack-sdk to a local Slack stand-in."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts import message as build
from alerts.message import (
    AlertContent,
    SlackMessage,
    alert_message,
    escape,
    flood_summary,
    safe_url,
    syndication_reply,
)
from alerts.slack import BotSender, ConsoleSender, SlackError, WebhookSender

import slackserver
from slackserver import TOKEN, SlackServer

slack_server = slackserver.slack_server  # the fixture, until conftest registers it

HOSTILE = "<!channel> <@U123> & <https://evil|click> @here"

CONTENT = AlertContent(
    narrative_id="bio-labs",
    narrative_title="Secret bio-labs are run by a foreign army",
    narrative_summary="A recurring claim that research labs are weapons programmes.",
    narrative_url="https://euvsdisinfo.eu/report/bio-labs",
    article_title="New documents about the labs",
    article_url="https://news.example.org/labs?id=1&lang=en",
    outlet="Example News",
    language="en",
    published=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    score=0.8372,
    tier="alert",
    evidence="The labs are part of a secret weapons programme, the documents show.",
)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack-sdk sends everything through $HTTP(S)_PROXY, loopback included."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def bot(slack_server: SlackServer) -> BotSender:
    return BotSender(TOKEN, api_url=slack_server.api_url, timeout=5)


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a block structure."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _texts(message: SlackMessage, block_type: str) -> list[str]:
    return [block["text"]["text"] for block in message.blocks if block["type"] == block_type]


# Delivery with a bot token


def test_post_returns_the_message_ts(slack_server: SlackServer, bot: BotSender) -> None:
    message = alert_message(CONTENT)
    ts = bot.post("C0ALERTS", message)
    [posted] = slack_server.messages_in("C0ALERTS")
    assert ts == posted.ts == "1700000000.000100"
    assert posted.text == message.text
    assert posted.blocks == list(message.blocks)
    assert bot.supports_threads


def test_a_reply_lands_in_the_thread() -> None:
    with SlackServer(min_interval=None) as server:
        bot = BotSender(TOKEN, api_url=server.api_url)
        parent = bot.post("C0ALERTS", alert_message(CONTENT))
        reply = bot.post("C0ALERTS", syndication_reply(["Other Outlet"], ["https://o.example/x"]), parent)
        [posted] = server.thread(parent)
        assert posted.ts == reply != parent
        assert posted.thread_ts == parent
        assert "<https://o.example/x|Other Outlet>" in posted.blocks[0]["text"]["text"]


def test_an_invalid_token_is_not_retryable(slack_server: SlackServer) -> None:
    sender = BotSender("xoxb-wrong", api_url=slack_server.api_url)
    with pytest.raises(SlackError) as caught:
        sender.post("C0ALERTS", alert_message(CONTENT))
    assert (caught.value.error, caught.value.retryable, caught.value.channel) == (
        "invalid_auth",
        False,
        "C0ALERTS",
    )
    with pytest.raises(SlackError, match="invalid_auth"):
        sender.check()
    assert slack_server.messages == []


def test_auth_check(bot: BotSender) -> None:
    assert bot.check() == "Test / monitor"


def test_an_unknown_channel_is_not_retryable(bot: BotSender) -> None:
    with pytest.raises(SlackError) as caught:
        bot.post("C0NOWHERE", alert_message(CONTENT))
    assert (caught.value.error, caught.value.retryable) == ("channel_not_found", False)


def test_rate_limit_is_retryable_after_retry_after(slack_server: SlackServer, bot: BotSender) -> None:
    bot.post("C0ALERTS", alert_message(CONTENT))
    bot.post("C0WATCH", alert_message(CONTENT))  # the limit is per channel
    with pytest.raises(SlackError) as caught:
        bot.post("C0ALERTS", alert_message(CONTENT))
    error = caught.value
    assert (error.error, error.status, error.retryable, error.retry_after) == ("ratelimited", 429, True, 1.0)
    assert slack_server.request_count == 3  # slack-sdk did not retry behind our back
    time.sleep(error.retry_after or 0)
    bot.post("C0ALERTS", alert_message(CONTENT))
    assert len(slack_server.messages_in("C0ALERTS")) == 2


def test_a_server_error_is_retryable(slack_server: SlackServer, bot: BotSender) -> None:
    slack_server.fail_next(1, status=500)
    with pytest.raises(SlackError) as caught:
        bot.post("C0ALERTS", alert_message(CONTENT))
    assert (caught.value.error, caught.value.retryable) == ("HTTP 500 Internal Server Error", True)
    assert slack_server.request_count == 1
    assert bot.post("C0ALERTS", alert_message(CONTENT))


def test_a_dropped_connection_is_retryable(slack_server: SlackServer, bot: BotSender) -> None:
    slack_server.drop_next(1)
    with pytest.raises(SlackError) as caught:
        bot.post("C0ALERTS", alert_message(CONTENT))
    assert caught.value.retryable
    assert caught.value.error.startswith("connection failed")
    assert slack_server.request_count == 1  # no hidden retry of the connection error


def test_a_timeout_is_retryable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/"
        with pytest.raises(SlackError) as caught:
            BotSender(TOKEN, api_url=url, timeout=0.2).post("C0ALERTS", alert_message(CONTENT))
    assert caught.value.retryable
    assert caught.value.error.startswith("timeout")


def test_a_refused_connection_is_retryable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(SlackError) as caught:
        BotSender(TOKEN, api_url=f"http://127.0.0.1:{port}/api/").post("C0ALERTS", alert_message(CONTENT))
    assert caught.value.retryable


def test_a_malformed_api_url_is_not_retryable() -> None:
    with pytest.raises(SlackError) as caught:
        BotSender(TOKEN, api_url="ftp://slack.example/api/").post("C0ALERTS", alert_message(CONTENT))
    assert not caught.value.retryable


def test_the_stand_in_refuses_blocks_over_slack_limits(bot: BotSender) -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    with pytest.raises(SlackError) as caught:
        bot.post("C0ALERTS", SlackMessage(text="too long", blocks=(header,)))
    assert (caught.value.error, caught.value.retryable) == ("invalid_blocks", False)


# Delivery through an incoming webhook


def test_webhook_post(slack_server: SlackServer) -> None:
    sender = WebhookSender(slack_server.webhook_url, timeout=5)
    message = alert_message(replace(CONTENT, also_published_by=("A", "B")))
    assert sender.post("ignored", message) == ""
    assert not sender.supports_threads
    [posted] = slack_server.messages_in(slack_server.webhook_channel)
    assert (posted.text, posted.blocks, posted.via) == (message.text, list(message.blocks), "webhook")


def test_webhook_failures(slack_server: SlackServer) -> None:
    sender = WebhookSender(slack_server.webhook_url, timeout=5)
    slack_server.fail_next(1, status=503)
    with pytest.raises(SlackError) as caught:
        sender.post("hook", alert_message(CONTENT))
    assert (caught.value.status, caught.value.retryable) == (503, True)
    sender.post("hook", alert_message(CONTENT))
    with pytest.raises(SlackError) as caught:
        sender.post("hook", alert_message(CONTENT))
    limited = caught.value
    assert (limited.error, limited.retryable, limited.retry_after) == ("rate_limited", True, 1.0)
    with pytest.raises(SlackError) as caught:
        WebhookSender(slack_server.base_url + "/webhook/T000/B000/NOPE").post("hook", alert_message(CONTENT))
    assert (caught.value.error, caught.value.retryable) == ("no_service", False)


# Building messages


def test_escape_defuses_markup_and_broadcasts() -> None:
    escaped = escape(HOSTILE)
    assert escaped.startswith("&lt;!channel&gt; &lt;@U123&gt; &amp; &lt;https://evil|click&gt;")
    assert "@here" not in escaped and "@\u2060here" in escaped
    assert "@" + "\u2060" + "Everyone" in escape("@Everyone")


def test_hostile_text_is_neutralised_everywhere(slack_server: SlackServer, bot: BotSender) -> None:
    hostile = replace(
        CONTENT,
        narrative_title=HOSTILE,
        narrative_summary=HOSTILE,
        article_title=HOSTILE,
        outlet=HOSTILE,
        language=HOSTILE,
        tier=HOSTILE,
        evidence=HOSTILE,
        also_published_by=(HOSTILE,),
    )
    message = alert_message(hostile)
    for text in [message.text, *_strings(list(message.blocks))]:
        for live in ("<!channel>", "<@U123>", "<https://evil", "@here", "@channel"):
            assert live not in text
    assert bot.post("C0ALERTS", message)


def test_a_long_narrative_title_is_cut_to_the_header_limit() -> None:
    [header] = _texts(alert_message(replace(CONTENT, narrative_title="N" * 200)), "header")
    assert len(header) == 150 and header.endswith("…")
    [header] = _texts(alert_message(replace(CONTENT, narrative_title="&" * 200)), "header")
    assert len(header) <= 150 and header.endswith("&amp;…")  # never half an entity


def test_long_evidence_is_cut_to_the_section_limit(slack_server: SlackServer, bot: BotSender) -> None:
    message = alert_message(replace(CONTENT, evidence="word " * 2000, narrative_summary="s" * 5000))
    sections = _texts(message, "section")
    assert all(len(text) <= 3000 for text in sections)
    assert any(text.startswith("> word") and text.endswith("…") for text in sections)
    assert len(message.text) <= 40_000
    bot.post("C0ALERTS", message)


def test_alert_message_layout() -> None:
    message = alert_message(replace(CONTENT, also_published_by=tuple(f"O{i}" for i in range(13))))
    types = [block["type"] for block in message.blocks]
    assert types == ["header", "section", "context", "section", "section", "context"]
    link = "<https://news.example.org/labs?id=1&amp;lang=en|New documents about the labs>"
    assert _texts(message, "section")[0] == f"*{link}*"
    facts = [element["text"] for element in message.blocks[2]["elements"]]
    assert facts == [
        "*Example News*",
        "lang: en",
        "<!date^1714566600^{date_short_pretty} {time}|2024-05-01 12:30 UTC>",
        "score 0.84",
        ":rotating_light: alert",
    ]
    assert "<https://euvsdisinfo.eu/report/bio-labs|" in _texts(message, "section")[2]
    assert message.blocks[-1]["elements"][0]["text"].endswith("O9 (+3 more)")


def test_safe_url() -> None:
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https:///no-host") is None
    assert safe_url("http://x.example/a|b<c>d e") == "http://x.example/a%7Cb%3Cc%3Ed%20e"
    assert safe_url("https://x.example/" + "a" * 3000) is None
    unlinked = alert_message(replace(CONTENT, article_url="javascript:alert(1)"))
    assert _texts(unlinked, "section")[0] == "*New documents about the labs*"


def test_flood_summary_lists_a_capped_number(slack_server: SlackServer, bot: BotSender) -> None:
    items = [(f"Article {i} " + "t" * 300, f"https://n.example/{i}", f"Outlet {i}") for i in range(500)]
    message = flood_summary(HOSTILE, items, "1h")
    assert len(message.blocks) <= 50
    assert message.blocks[-1]["elements"][0]["text"] == "+480 more"
    assert "500 articles" in message.text and "<!channel>" not in message.text
    bot.post("C0ALERTS", message)


def test_syndication_reply_pairs_outlets_with_links() -> None:
    message = syndication_reply(["A", "B", "C"], ["https://a.example/", None])
    [text] = _texts(message, "section")
    assert text == "*Also published by*\n• <https://a.example/|A>\n• B\n• C"
    assert message.text == "Also published by: A, B, C"


# The console stand-in


def test_console_sender_writes_the_same_content() -> None:
    stream = io.StringIO()
    sender = ConsoleSender(stream)
    message = alert_message(CONTENT)
    assert sender.post("#alerts", message) == "console.1"
    assert sender.post("#alerts", build.test_message(), "console.1") == "console.2"
    output = stream.getvalue()
    assert "#alerts" in output and message.text in output and "(thread console.1)" in output
    assert all(part in output for line in message.lines() for part in line.splitlines())
    assert sender.supports_threads


def test_console_sender_logs_without_a_stream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="alerts.slack")
    ConsoleSender().post("#alerts", build.test_message())
    assert "Narrative Monitor test message" in caplog.text
