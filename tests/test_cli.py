"""The `monitor` command as a user runs it: a real process, a real database, a loopback server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feedserver import FeedServer, Response

RSS = "application/rss+xml"
COMMENTED = """# My newsroom's feeds
[monitor]
poll_interval = "15m"  # be polite
per_host_delay = "0s"
reload_interval = "500ms"

[matching]
model = "hashing"  # the model-free embedder keeps these process-level tests fast

# --- feeds ---
"""


def rss(*titles: str) -> bytes:
    items = "".join(f"<item><guid>{t}</guid><link>/{t}</link><title>{t}</title></item>" for t in titles)
    return f'<rss version="2.0"><channel><title>Wire</title>{items}</channel></rss>'.encode()


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {**os.environ, "MONITOR_DATABASE_URL": database_url, "COLUMNS": "200"}


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer) -> Path:
    feed_server.route("/wire", Response(200, rss("one", "two"), {"Content-Type": RSS}))
    feed_server.route("/broken", Response(500))
    path = tmp_path / "feeds.toml"
    path.write_text(COMMENTED + f"""
[feeds.wire]
url = "{feed_server.url('/wire')}"
name = "Wire"

[feeds.broken]
url = "{feed_server.url('/broken')}"
""", encoding="utf-8")
    return path


def monitor(
    *args: str, env: dict[str, str], config: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    prefix = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "monitor.cli.main", *prefix, *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_config_check(config: Path, env: dict[str, str]) -> None:
    done = monitor("config", "check", env=env, config=config)
    assert done.returncode == 0, done.stderr
    assert "OK (2 feed(s), 2 enabled" in done.stdout


def test_config_check_reports_every_problem(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[monitor]\npoll_interval = '10s'\n[feeds.x]\nurl = 'nope'\ntypo = 1\n")
    done = monitor("config", "check", env=env, config=bad)
    assert done.returncode == 1
    assert f"{bad}: monitor.poll_interval: must be at least 60 seconds" in done.stderr
    assert f"{bad}: feeds.x.url: must be an http:// or https:// URL" in done.stderr
    assert f"{bad}: feeds.x.typo: unknown key" in done.stderr


def test_config_from_environment_variable(config: Path, env: dict[str, str]) -> None:
    done = monitor("config", "check", env={**env, "MONITOR_CONFIG": str(config)})
    assert done.returncode == 0 and str(config) in done.stdout


def test_poll_once_then_feeds_list(config: Path, env: dict[str, str]) -> None:
    done = monitor("poll", "--once", env=env, config=config)
    assert done.returncode == 0, done.stderr
    assert "Polled 2 feed(s): 1 ok, 1 failed; 2 new article(s)" in done.stdout
    listed = monitor("feeds", "list", "--json", env=env, config=config)
    feeds = {f["id"]: f for f in json.loads(listed.stdout)}
    keys = ["id", "url", "status", "last_success", "last_error", "consecutive_errors",
            "next_poll", "article_count"]
    assert all(list(f) == keys for f in feeds.values())
    assert feeds["wire"]["status"] == "ok" and feeds["wire"]["article_count"] == 2
    assert feeds["broken"]["status"] == "error"
    assert feeds["broken"]["last_error"] == "HTTP 500 Internal Server Error"
    assert feeds["broken"]["consecutive_errors"] == 1 and feeds["broken"]["next_poll"]
    again = monitor("poll", "--once", "--feed", "wire", env=env, config=config)
    assert "Polled 1 feed(s): 1 ok, 0 failed; 0 new article(s)" in again.stdout
    table = monitor("feeds", "list", env=env, config=config).stdout
    assert "HTTP 500 Internal Server Error" in table and "wire" in table


def test_poll_unknown_feed_is_an_error(config: Path, env: dict[str, str]) -> None:
    done = monitor("poll", "--once", "--feed", "nosuch", env=env, config=config)
    assert done.returncode == 1 and "feeds.nosuch: no such feed" in done.stderr


def test_unreachable_database_is_a_clear_error(config: Path, env: dict[str, str]) -> None:
    bad = {**env, "MONITOR_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    done = monitor("db", "upgrade", env=bad, config=config)
    assert done.returncode == 1 and "cannot open or migrate the database" in done.stderr


def test_json_logs(config: Path, env: dict[str, str]) -> None:
    done = monitor("--json-logs", "poll", "--once", env=env, config=config)
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    failed = next(e for e in events if e["event"] == "poll failed")
    assert failed["feed"] == "broken" and failed["url"].endswith("/broken")


def test_feeds_add_keeps_comments(config: Path, env: dict[str, str], feed_server: FeedServer) -> None:
    feed_server.route("/new.xml", Response(200, rss("x"), {"Content-Type": RSS}))
    done = monitor("feeds", "add", feed_server.url("/new.xml"), "--id", "agency",
                   "--interval", "30m", env=env, config=config)
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    assert text.startswith(COMMENTED) and "# be polite" in text
    assert f'[feeds.agency]\nurl = "{feed_server.url("/new.xml")}"\nname = "Wire"\ninterval = "30m"' in text
    assert monitor("config", "check", env=env, config=config).returncode == 0
    again = monitor("feeds", "add", feed_server.url("/new.xml"), env=env, config=config)
    assert again.returncode == 1 and "feeds.agency: already polls" in again.stderr


def test_feeds_add_discovers_the_feed_in_a_page(
    config: Path, env: dict[str, str], feed_server: FeedServer
) -> None:
    page = (b'<html><head><link rel="stylesheet" href="/s.css">'
            b'<link rel="alternate" type="application/rss+xml" title="News" href="/rss/news.xml">'
            b"</head><body>Hello</body></html>")
    feed_server.route("/", Response(200, page, {"Content-Type": "text/html; charset=utf-8"}))
    feed_server.route("/rss/news.xml", Response(200, rss("y"), {"Content-Type": RSS}))
    done = monitor("feeds", "add", feed_server.url("/"), env=env, config=config)
    assert done.returncode == 0, done.stderr
    assert f'url = "{feed_server.url("/rss/news.xml")}"' in config.read_text()


def test_feeds_add_refuses_a_page_without_feed(
    config: Path, env: dict[str, str], feed_server: FeedServer
) -> None:
    feed_server.route("/plain", Response(200, b"<html><p>No feed</p></html>", {"Content-Type": "text/html"}))
    before = config.read_text()
    done = monitor("feeds", "add", feed_server.url("/plain"), env=env, config=config)
    assert done.returncode == 1 and "not a feed" in done.stderr
    assert config.read_text() == before


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def running(config: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli.main", "--config", str(config), "run"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_run_picks_up_config_edits_and_stops_cleanly(
    running: subprocess.Popen[str], config: Path, feed_server: FeedServer
) -> None:
    wait_for(lambda: bool(feed_server.requests_to("/wire")), 30, "the first poll")
    feed_server.route("/late", Response(200, rss("late"), {"Content-Type": RSS}))
    original = config.read_text()
    config.write_text(original + "\n[feeds.broken\n")  # a broken edit must not stop anything
    time.sleep(1.5)
    config.write_text(original + f'\n[feeds.late]\nurl = "{feed_server.url("/late")}"\n')
    wait_for(lambda: bool(feed_server.requests_to("/late")), 30, "the added feed to be polled")
    running.send_signal(signal.SIGTERM)
    _, stderr = running.communicate(timeout=30)
    assert running.returncode == 0, stderr
    assert "config edit rejected" in stderr and "TOML syntax error" in stderr
    assert "feed scheduled feed=late" in stderr
    assert "scheduler stopped" in stderr


def test_narratives_import_list_show_and_switch(tmp_path: Path, config: Path, env: dict[str, str]) -> None:
    file = tmp_path / "mine.jsonl"
    file.write_text('{"id": "biolabs", "title": "The US runs secret biolabs in Ukraine."}\n'
                    '{"title": ""}\n'
                    '{"title": "Sanctions only hurt Europe.", "threshold": 0.7}\n', encoding="utf-8")
    done = monitor("narratives", "import", str(file), env=env, config=config)
    assert done.returncode == 1  # a bad row: reported, the rest imported
    assert f"{file}:2:" in done.stderr and "title" in done.stderr
    assert "Imported 2 narrative(s)" in done.stdout
    listed = json.loads(monitor("narratives", "list", "--json", env=env, config=config).stdout)
    ids = {n["id"] for n in listed}
    assert "biolabs" in ids and len(ids) >= 2 + 18  # ours plus the starter narratives
    shown = monitor("narratives", "show", "biolabs", env=env, config=config)
    assert "secret biolabs" in shown.stdout
    assert monitor("narratives", "disable", "biolabs", env=env, config=config).returncode == 0
    listed = json.loads(monitor("narratives", "list", "--json", env=env, config=config).stdout)
    assert next(n for n in listed if n["id"] == "biolabs")["enabled"] is False
    missing = monitor("narratives", "enable", "nosuch", env=env, config=config)
    assert missing.returncode == 1 and "no narrative with id 'nosuch'" in missing.stderr


def test_match_input_jsonl(tmp_path: Path, config: Path, env: dict[str, str]) -> None:
    file = tmp_path / "n.yaml"
    file.write_text("- id: biolabs\n  title: The US runs secret biolabs in Ukraine.\n", encoding="utf-8")
    monitor("narratives", "import", str(file), env=env, config=config)
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": 1, "text": "The US runs secret biolabs in Ukraine, he said."}\n'
                       '{"id": "two", "text": "Library opening hours extended."}\n', encoding="utf-8")
    done = monitor("match", "--input", str(queries), "--top", "3", env=env, config=config)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["id"] for line in lines] == [1, "two"]
    assert all(set(m) == {"narrative_id", "score", "alert"} for line in lines for m in line["matches"])
    assert lines[0]["matches"][0]["narrative_id"] == "biolabs" and lines[0]["matches"][0]["alert"]
    assert not any(m["alert"] for m in lines[1]["matches"])
    text = monitor("match", "The US runs secret biolabs in Ukraine", env=env, config=config)
    assert "biolabs" in text.stdout and "alert" in text.stdout
    full = monitor("match", "--json", "The US runs secret biolabs in Ukraine", env=env, config=config)
    best = json.loads(full.stdout.splitlines()[0])["matches"][0]
    # Every word of the claim is in the text, but a claim this short (four words beside the starter
    # narratives' long examples) counts as weighing as much as the median narrative text.
    assert best["narrative_id"] == "biolabs" and 0.1 < best["coverage"] < 1
    assert best["score"] == pytest.approx(best["cosine"] + 0.2 * best["coverage"], abs=1e-3)


def test_poll_once_matches_new_articles(config: Path, env: dict[str, str], feed_server: FeedServer) -> None:
    feed_server.route("/wire", Response(200, rss("one", "two"), {"Content-Type": RSS}))
    done = monitor("poll", "--once", env=env, config=config)
    assert "Matched 2 article(s)" in done.stdout
    # Stories are updated after matching, from the leads it embedded (one outlet: no story).
    said = " ".join(done.stdout.split())
    assert "Stories updated" in said and "2 article(s) in the window (2 new), 0 live stories" in said
    again = monitor("poll", "--once", env=env, config=config)
    assert "Matched 0 article(s)" in again.stdout


def test_default_install_alerts_on_a_starter_narrative(tmp_path: Path, feed_server: FeedServer) -> None:
    """The real default model and the shipped narratives, end to end (SQLite only: it is slow)."""
    story = ("<item><guid>g1</guid><link>/tbilisi</link><title>Who is behind the Tbilisi riots</title>"
             "<description>The protests in Georgia are a colour revolution: the demonstrators were "
             "trained and paid by Western foundations and the US embassy to overthrow the "
             "government.</description></item>"
             "<item><guid>g2</guid><link>/rates</link><title>Rates unchanged</title><description>The "
             "central bank kept interest rates unchanged, citing slowing inflation.</description></item>")
    feed_server.route("/news", Response(200, f'<rss version="2.0"><channel><title>N</title>{story}'
                                             "</channel></rss>".encode(), {"Content-Type": RSS}))
    config = tmp_path / "feeds.toml"
    config.write_text(f'[feeds.news]\nurl = "{feed_server.url("/news")}"\n', encoding="utf-8")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}, "HF_HUB_OFFLINE": "1",
           "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path / 'monitor.db'}"}
    # The first use of the default ONNX backend exports the model into data_dir (seconds; more under load).
    polled = monitor("poll", "--once", env=env, config=config, timeout=300)
    assert "Matched 2 article(s)" in polled.stdout, polled.stderr
    # No Slack token or webhook: the alert goes to the console sink, with the same content.
    assert "Delivered 1 alert message(s)" in polled.stdout
    assert "slack #narrative-alerts" in polled.stderr and "Who is behind the Tbilisi riots" in polled.stderr
    found = monitor("matches", "--json", env=env, config=config)
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    # One alert; the multilingual route may add a watch line for the Georgian narrative, whose
    # example phrasings are Russian and French.
    assert [(r["narrative_id"], r["tier"]) for r in rows if r["tier"] == "alert"] == [
        ("colour-revolutions", "alert")]
    assert {r["narrative_id"] for r in rows} <= {"colour-revolutions", "georgia-foreign-agents"}
    assert rows[0]["article_title"] == "Who is behind the Tbilisi riots"
    assert "colour revolution" in rows[0]["evidence"]


def test_eval_on_a_users_labelled_set(tmp_path: Path, config: Path, env: dict[str, str]) -> None:
    narratives = tmp_path / "n.yaml"
    narratives.write_text("- id: biolabs\n  title: US runs secret biolabs in Ukraine\n"
                          "- id: nato\n  title: NATO encircles Russia\n", encoding="utf-8")
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "q1", "text": "US runs secret biolabs in Ukraine, he said", '
                       '"narratives": ["biolabs"]}\n'
                       '{"id": "q2", "text": "football results", "narratives": []}\n', encoding="utf-8")
    done = monitor("eval", "--narratives", str(narratives), "--queries", str(queries), "--json",
                   env=env, config=config)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["metrics"]["MAP@5"] == 1.0 and figures["metrics"]["P@1"] == 1.0
    assert figures["queries"] == 2 and len(figures["sweep"]) == 13
    missing = monitor("eval", "--checkthat", str(tmp_path / "nowhere"), env=env, config=config)
    assert missing.returncode == 1 and "nowhere" in missing.stderr
