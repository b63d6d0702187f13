"""/metrics, /healthz and `monitor status`: real HTTP on loopback, real databases, real processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from test_cli import RSS, monitor, rss, wait_for

from monitor.cli.status import ops_server
from monitor.config import load_settings, parse_config
from monitor.errors import ConfigError
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.embedders import HashingEmbedder
from monitor.matching.index import Thresholds
from monitor.matching.stage import MatchStage
from monitor.service.http import OpsServer, make_server
from monitor.types import AlertStatus, Article, Feed, FeedState, FeedStatus, Match, Narrative, Tier
from storage.db import open_engine
from storage.digest_repo import DigestStore
from storage.narratives_repo import MatchStore
from storage.outbox import Outbox
from storage.repo import Repository

from feedserver import FeedServer, Response

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CONFIGURED = [
    Feed("wire", "https://wire.example/rss"),
    Feed("broken", "https://broken.example/rss"),
    Feed("paused", "https://paused.example/rss", enabled=False),
    Feed("unsynced", "https://unsynced.example/rss"),  # in the config, no process synced it yet
]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def populate(engine: Engine) -> None:
    """Feeds in every state, 3 articles, 2 alert and 1 watch match, 3 outbox messages, 2 digests."""
    repo = Repository(engine, clock=lambda: T0)
    repo.sync_feeds([*CONFIGURED[:3], Feed("dropped", "https://dropped.example/rss")])
    articles = [_article(f"a{i}") for i in range(3)]
    ids = [s.id for s in repo.record_success(FeedState("wire", CONFIGURED[0].url, FeedStatus.OK,
                                                       last_success=T0), articles)]
    repo.save_feed_state(FeedState("broken", CONFIGURED[1].url, FeedStatus.ERROR, last_error="HTTP 500",
                                   last_error_at=T0 + timedelta(hours=1), consecutive_errors=2))
    store = MatchStore(engine, clock=lambda: T0)
    store.upsert_narratives([Narrative("n1", "Claim one"), Narrative("n2", "Claim two")])
    store.save_passages_and_matches("model", {}, [
        Match(ids[0], "n1", 0.8, Tier.ALERT, "p", "e"), Match(ids[1], "n1", 0.7, Tier.ALERT, "p", "e"),
        Match(ids[2], "n2", 0.55, Tier.WATCH, "p", "e"),
    ])
    outbox = Outbox(engine, clock=lambda: T0)
    sent, failed, _pending = (outbox.add_test(channel) for channel in ("#a", "#b", "#c"))
    outbox.settle(sent, AlertStatus.SENT, ts="1.0")
    outbox.settle(failed, AlertStatus.FAILED, error="channel_not_found")
    digests = DigestStore(engine, clock=lambda: T0)
    digests.record("2026-11-22", "sent", destination="smtp")
    digests.record("2026-11-23", "failed", error="SMTP 550 refused")


def _article(guid: str) -> Article:
    return Article(feed_id="wire", guid=guid, guid_hash=guid_hash(guid), url=f"https://wire.example/{guid}",
                   title=f"Title {guid}", text=f"Body of {guid}.", author=None, language="en",
                   published=T0, fetched=T0, content_hash=content_hash(f"Title {guid}", f"Body of {guid}."))


def get(server: OpsServer, path: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET to the server."""
    host, port = server.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(server: OpsServer) -> Samples:
    status, content_type, body = get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    return samples(body)


def serve(engine: Engine, running: Callable[[], bool] = lambda: True) -> OpsServer:
    return make_server(engine, "127.0.0.1", 0, running, lambda: CONFIGURED)


def test_metrics_report_what_the_database_holds(engine: Engine) -> None:
    populate(engine)
    with serve(engine) as server:
        found = scrape(server)
    feeds = {labels[0][1]: value for (name, labels), value in found.items() if name == "monitor_feeds"}
    assert feeds == {"new": 1, "ok": 1, "error": 1, "gone": 0, "disabled": 1, "removed": 1}
    assert found[("monitor_feeds_failing", ())] == 1
    assert found[("monitor_last_poll_timestamp_seconds", ())] == (T0 + timedelta(hours=1)).timestamp()
    assert found[("monitor_articles_stored", ())] == 3
    assert found[("monitor_matches", (("tier", "alert"),))] == 2
    assert found[("monitor_matches", (("tier", "watch"),))] == 1
    alerts = {labels[0][1]: value for (name, labels), value in found.items() if name == "monitor_alerts"}
    assert alerts == {"pending": 1, "sending": 0, "sent": 1, "failed": 1, "held": 0, "merged": 0,
                      "suppressed": 0}
    assert found[("monitor_digest_last_info", (("period", "2026-11-23"), ("status", "failed")))] == 1
    assert found[("monitor_digest_last_attempts", ())] == 1
    assert found[("monitor_digest_last_sent_timestamp_seconds", ())] == T0.timestamp()
    assert found[("monitor_health_check", (("check", "database"),))] == 1


def test_an_empty_database_reports_zeros_and_no_timestamps(engine: Engine) -> None:
    with serve(engine) as server:
        found = scrape(server)
    assert found[("monitor_feeds", (("status", "new"),))] == 3  # wire, broken, unsynced
    assert found[("monitor_articles_stored", ())] == 0
    assert found[("monitor_alerts", (("status", "pending"),))] == 0
    names = {name for name, _labels in found}
    assert "monitor_last_poll_timestamp_seconds" not in names
    assert "monitor_digest_last_info" not in names


def test_healthz_is_200_when_the_database_answers_and_the_scheduler_runs(sqlite_engine: Engine) -> None:
    running = threading.Event()
    running.set()
    with serve(sqlite_engine, running.is_set) as server:
        status, content_type, body = get(server, "/healthz")
        assert (status, content_type) == (200, "application/json")
        assert json.loads(body) == {"status": "ok", "checks": {"database": {"ok": True},
                                                               "storage": {"ok": True},
                                                               "scheduler": {"ok": True}}}
        running.clear()
        status, _type, body = get(server, "/healthz")
        assert status == 503
        assert json.loads(body)["checks"]["scheduler"] == {"ok": False, "error": "not running"}
        assert scrape(server)[("monitor_health_check", (("check", "scheduler"),))] == 0
        assert get(server, "/nothing-here")[0] == 404


def test_an_unreachable_database_is_unhealthy_but_metrics_still_answer() -> None:
    engine = open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with serve(engine) as server:
            status, _type, body = get(server, "/healthz")
            found = scrape(server)
    finally:
        engine.dispose()
    health = json.loads(body)
    assert status == 503 and health["status"] == "unhealthy"
    assert health["checks"]["database"]["ok"] is False and health["checks"]["database"]["error"]
    assert found[("monitor_health_check", (("check", "database"),))] == 0
    assert ("monitor_articles_stored", ()) not in found


def test_embed_time_is_observed_where_the_matching_stage_runs(sqlite_engine: Engine) -> None:
    populate(sqlite_engine)
    stage = MatchStage(MatchStore(sqlite_engine), HashingEmbedder(), Thresholds(0.6, 0.5))
    with serve(sqlite_engine) as server:
        before = scrape(server)
        run = stage.run_pending()
        after = scrape(server)
        stage.run_pending()  # nothing left to embed: an idle pass is not an observation
        idle = scrape(server)

    def grew(name: str, found: Samples = after) -> float:
        return found[(name, ())] - before[(name, ())]

    assert run.articles == 3 and run.passages >= 3
    assert grew("monitor_embed_seconds_count") == 1
    assert grew("monitor_embed_seconds_sum") == pytest.approx(run.seconds)
    assert grew("monitor_embedded_articles_total") == 3
    assert grew("monitor_embedded_passages_total") == run.passages
    assert grew("monitor_embed_seconds_count", idle) == 1


def _settings_file(tmp_path: Path, monitor_section: str) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(f"[monitor]\n{monitor_section}\n", encoding="utf-8")
    return path


def test_a_busy_port_is_logged_and_the_monitor_carries_on(
    sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(_settings_file(tmp_path, f"metrics_port = {port}"))
        with caplog.at_level(logging.ERROR), ops_server(settings, sqlite_engine, lambda: True,
                                                        lambda: []) as server:
            assert server is None
    assert "metrics and health server not started" in caplog.text


def test_port_zero_serves_nothing(sqlite_engine: Engine, tmp_path: Path) -> None:
    settings = load_settings(_settings_file(tmp_path, "metrics_port = 0"))
    with ops_server(settings, sqlite_engine, lambda: True, lambda: []) as server:
        assert server is None


def test_metrics_settings_are_validated_with_key_and_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(b'[monitor]\nmetrics_port = 70000\nmetrics_host = "not a host"\n', Path("ops.toml"))
    message = str(caught.value)
    assert "ops.toml: monitor.metrics_port: must be a port number from 1 to 65535, or 0" in message
    assert "ops.toml: monitor.metrics_host: must be an IP address or host name" in message
    defaults = parse_config(b"", Path("ops.toml")).monitor
    assert (defaults.metrics_host, defaults.metrics_port) == ("127.0.0.1", 9470)


# The command line, as a user runs it.


def _config(tmp_path: Path, body: str, port: int = 0) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(f"""[monitor]
per_host_delay = "0s"
reload_interval = "500ms"
metrics_port = {port}

[matching]
model = "hashing"
embed_interval = "1s"
{body}""", encoding="utf-8")
    return path


def _status_json(config: Path, env: dict[str, str]) -> dict[str, Any]:
    done = monitor("status", "--json", env=env, config=config)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_status_prints_the_same_figures(engine: Engine, database_url: str, tmp_path: Path) -> None:
    populate(engine)
    feeds = "".join(f'\n[feeds.{f.id}]\nurl = "{f.url}"\nenabled = {str(f.enabled).lower()}\n'
                    for f in CONFIGURED)
    config = _config(tmp_path, feeds)
    env = {**os.environ, "MONITOR_DATABASE_URL": database_url, "COLUMNS": "200"}
    status = _status_json(config, env)
    assert status["feeds"] == {"new": 1, "ok": 1, "error": 1, "gone": 0, "disabled": 1, "removed": 1}
    assert status["feeds_failing"] == 1 and status["articles_stored"] == 3
    assert status["matches"] == {"alert": 2, "watch": 1}
    assert status["alerts"]["pending"] == 1 and status["alerts"]["failed"] == 1
    assert status["digest"] == {"period": "2026-11-23", "status": "failed", "attempts": 1,
                                "last_error": "SMTP 550 refused", "last_sent": T0.isoformat()}
    assert status["monitor_run"] == {"url": None, "health": None}  # metrics_port = 0
    table = monitor("status", env=env, config=config)
    assert table.returncode == 0, table.stderr
    lines = {line.split("  ")[0].strip(): line for line in table.stdout.splitlines()}
    assert "new 1, ok 1, error 1, disabled 1, removed 1" in lines["feeds"]
    assert lines["articles stored"].split()[-1] == "3"
    assert "2026-11-23: failed (1 attempt(s)), SMTP 550 refused" in lines["last digest"]
    assert "metrics_port = 0" in lines["monitor run"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fetch(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None


def test_run_serves_healthz_and_metrics(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.route("/wire", Response(200, rss("one", "two"), {"Content-Type": RSS}))
    port, web_port = _free_port(), _free_port()
    body = f'\n[web]\nport = {web_port}\n\n[feeds.wire]\nurl = "{feed_server.url("/wire")}"\n'
    config = _config(tmp_path, body, port)
    env = {**os.environ, "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path}/run.db", "COLUMNS": "200"}
    env.pop("SLACK_SIGNING_SECRET", None)
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli.main", "--config", str(config), "run"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: (_fetch(f"{base}/healthz") or (0, ""))[0] == 200, 60, "a healthy /healthz")
        assert json.loads((_fetch(f"{base}/healthz") or (0, ""))[1])["checks"] == {
            "database": {"ok": True}, "storage": {"ok": True}, "scheduler": {"ok": True}}

        def metrics() -> Samples:
            answer = _fetch(f"{base}/metrics")
            return samples(answer[1]) if answer else {}

        wait_for(lambda: metrics().get(("monitor_embedded_articles_total", ())) == 2, 60,
                 "both articles stored and embedded")
        found = metrics()
        assert found[("monitor_feeds", (("status", "ok"),))] == 1
        assert found[("monitor_articles_stored", ())] == 2
        assert found[("monitor_embed_seconds_count", ())] >= 1
        status = _status_json(config, env)
        assert status["articles_stored"] == 2
        click = urllib.request.Request(f"http://127.0.0.1:{web_port}/slack/interactions",
                                       data=b"payload=%7B%7D", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:  # run takes Slack's clicks too, not unsigned
            urllib.request.urlopen(click, timeout=5)
        assert refused.value.code == 503
        assert status["monitor_run"]["health"]["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"serving /metrics and /healthz url=http://127.0.0.1:{port}/" in stderr
    assert "SLACK_SIGNING_SECRET is not set" in stderr
    assert _fetch(f"{base}/healthz") is None  # stopped with the monitor, port released
