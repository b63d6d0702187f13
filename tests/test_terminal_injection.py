"""Article text that tries to drive a terminal or reorder what is read, shown where users see it.

A feed on loopback publishes an item whose title holds a terminal hyperlink (OSC 8), a
clear-screen, a blink, a C1 CSI and a right-to-left override; the monitor runs as a real
process. Whatever it prints (console alert sink, `matches`, `match`, `narratives show`,
`feeds list`), posts to Slack or writes as a digest must keep the readable words and none of
those characters.
"""

from __future__ import annotations

import email
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from alerts.message import alert_message
from alerts.slack import ConsoleSender
from alerts.text import json_escaped, one_line, printable
from monitor.types import AlertContent

from feedserver import FeedServer, Response
from slackserver import TOKEN, SlackServer

CLAIM = "The United States runs secret biological weapons laboratories in Ukraine"
# After the claim, so that the words the matcher needs stay whole whatever is removed.
HOSTILE = (f"{CLAIM} \x1b]8;;http://evil.example/\x1b\\clickme\x1b]8;;\x1b\\ \x1b[2J\x1b[5mblinking"
           "\u202e gnp.exe \x9b6n \u2066isolated\u2069 end")
WORDS = ("clickme", "blinking", "gnp.exe", "isolated", "end")
# ESC, the other C0 controls but newline, DEL, C1, and the bidi controls.
FORBIDDEN = set(map(chr, [*range(0x00, 0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0)]))
FORBIDDEN |= set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def inert(text: str) -> bool:
    """No character of `text` drives a terminal or reorders text (\\n and \\r\\n line ends aside)."""
    return not FORBIDDEN & set(text.replace("\r\n", "\n"))


def readable(text: str) -> bool:
    return all(word in text for word in WORDS)


# The sanitiser itself


@pytest.mark.parametrize(("raw", "shown"), [
    ("a\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\b", "aclickb"),  # OSC 8 hyperlink, ST-terminated
    ("title\x1b]0;pwned\x07!", "title!"),  # OSC window title, BEL-terminated
    ("\x1b[2J\x1b[1;31mred\x1b[0m", "red"),  # CSI erase, colours
    ("x\x1bcy\x1b(Bz", "xyz"),  # short escapes: reset, charset
    ("a\x9b6nb\x9dc", "a6nbc"),  # C1 controls go one by one: mis-decoded cp1252 keeps its text
    ("fdp.\u202eexe\u202c", "fdp.exe"),  # override and pop
    ("\u2067a\u2069\u200e\u200f\u061c", "a"),  # isolates and marks
    ("nul\x00bel\x07del\x7f", "nulbeldel"),
    ("a\tb\r\nc\u2028d", "a b c d"),
    ("Привет, мир — ok", "Привет, мир — ok"),  # ordinary text is untouched
    ("\ud800lone", "lone"),  # no encoding takes a lone surrogate
])
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert inert(printable(raw, newlines=True))


def test_printable_keeps_lines_when_asked() -> None:
    assert printable("one\r\ntwo\x0bthree", newlines=True) == "one\ntwo\nthree"
    assert one_line("  one \n\n two\x1b[2J  ") == "one two"


def test_json_escaped_keeps_the_data() -> None:
    data = {"title": HOSTILE, "other": "Привет\u2028"}
    text = json_escaped(json.dumps(data, ensure_ascii=False))
    assert inert(text) and "\u2028" not in text and "Привет" in text
    assert json.loads(text) == data


def test_console_sender_writes_plain_text() -> None:
    stream = io.StringIO()
    content = AlertContent(
        narrative_id="n", narrative_title=f"Narrative \x1b[5m{HOSTILE}", narrative_summary=HOSTILE,
        narrative_url=None, article_title=HOSTILE, article_url="https://example.org/a\u202eb",
        outlet="Out\x1b[2Jlet", language="en", published=datetime.now(UTC), score=0.9, tier="alert",
        evidence=HOSTILE,
    )
    ConsoleSender(stream).post("#alerts", alert_message(content))
    output = stream.getvalue()
    assert inert(output) and readable(output) and "Outlet" in output


# As a user meets it: a feed on loopback and the `monitor` command


def run(args: list[str], env: dict[str, str], config: Path, timeout: float = 120) -> tuple[str, str]:
    """Run `monitor --config CONFIG ARGS`; its stdout and stderr, decoded strictly as UTF-8."""
    done = subprocess.run([sys.executable, "-m", "monitor.cli.main", "--config", str(config), *args],
                          env=env, capture_output=True, timeout=timeout)
    out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert done.returncode == 0, (args, out, err)
    return out, err


def environment(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLACK_") and k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    return {**env, "MONITOR_DATABASE_URL": database_url, "COLUMNS": "300", "HF_HUB_OFFLINE": "1", **extra}


def hostile_feed(server: FeedServer) -> None:
    item = {"id": "hostile-1", "url": server.url("/story"), "title": HOSTILE,
            "content_text": f"{HOSTILE}. {CLAIM}, officials said."}
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Wire \u202eevil\x9b",
            "items": [item]}
    headers = {"Content-Type": "application/feed+json"}
    server.route("/feed.json", Response(200, json.dumps(feed).encode(), headers))
    server.route("/broken", Response(500))


def configure(tmp_path: Path, server: FeedServer, slack: str = "") -> Path:
    narratives = tmp_path / "narratives.json"
    narratives.write_text(json.dumps([{"id": "biolabs", "title": f"{CLAIM}.\u202e\x9b hidden",
                                       "summary": f"Summary \u2066{HOSTILE}"}]), encoding="utf-8")
    config = tmp_path / "feeds.toml"
    config.write_text(f"""
[monitor]
per_host_delay = "0s"

[matching]
model = "hashing"
starter_narratives = false

[alerts.slack]
channel = "C0ALERTS"
{slack}

[feeds.wire]
url = "{server.url('/feed.json')}"

[feeds.broken]
url = "{server.url('/broken')}"
""", encoding="utf-8")
    return config


def test_terminal_output_is_plain_text(tmp_path: Path, feed_server: FeedServer, database_url: str) -> None:
    hostile_feed(feed_server)
    config = configure(tmp_path, feed_server)
    env = environment(database_url)
    run(["narratives", "import", str(tmp_path / "narratives.json")], env, config)

    out, err = run(["poll", "--once"], env, config)  # no Slack token: the console sink
    assert "Delivered 1 alert message(s)" in out, (out, err)
    assert "slack C0ALERTS" in err and readable(err), err
    assert inert(out) and inert(err)

    out, err = run(["matches", "--since", "1h"], env, config)
    assert "1 match(es)" in out and readable(out), out
    assert inert(out) and inert(err)

    out, _ = run(["matches", "--json", "--since", "1h"], env, config)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert inert(out) and readable(row["article_title"])
    assert "\x9b" in row["article_title"]  # JSON escapes what it shows, the data stays whole

    out, _ = run(["match", HOSTILE], env, config)  # no ingest in between: the text as typed
    assert "biolabs" in out and "clickme" in out and inert(out)

    out, _ = run(["narratives", "show", "biolabs"], env, config)
    assert "hidden" in out and "isolated" in out and inert(out)
    out, _ = run(["narratives", "list"], env, config)
    assert "hidden" in out and inert(out)

    out, _ = run(["feeds", "list"], env, config)
    assert "HTTP 500" in out and inert(out)

    today = datetime.now(UTC).date().isoformat()
    run(["digest", "send", "--date", today], env, config)
    (eml,) = (tmp_path / "data" / "digests").glob("*.eml")
    digest = email.message_from_bytes(eml.read_bytes(), _class=EmailMessage, policy=default)
    assert isinstance(digest, EmailMessage)
    parts = [digest.get_body((kind,)) for kind in ("plain", "html")]
    for part in parts:
        assert part is not None
        text = part.get_content()
        assert inert(text) and "clickme" in text and "blinking" in text and "hidden" in text, text


def test_slack_message_has_no_control_characters(tmp_path: Path, feed_server: FeedServer,
                                                 database_url: str) -> None:
    with SlackServer(min_interval=None) as slack:
        hostile_feed(feed_server)
        config = configure(tmp_path, feed_server, slack=f'api_url = "{slack.api_url}"')
        env = environment(database_url, SLACK_BOT_TOKEN=TOKEN)
        run(["narratives", "import", str(tmp_path / "narratives.json")], env, config)
        out, err = run(["poll", "--once"], env, config)
        assert "Delivered 1 alert message(s)" in out, (out, err)
        (message,) = slack.messages
    texts = list(strings({"text": message.text, "blocks": message.blocks}))
    assert all(inert(text) for text in texts), texts
    shown = "\n".join(texts)
    assert readable(message.text) and readable(shown) and "hidden" in shown
    assert "<http://evil" not in shown  # the hyperlink's target is never a live link


def strings(value: Any) -> Any:
    """Every string inside `value`, a JSON-like structure."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)
