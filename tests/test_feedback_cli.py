"""`monitor feedback`, `monitor calibrate` and the narrative mute commands as a user runs them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine
from typer.testing import CliRunner

from alerts.outbox_rules import copy_entries
from monitor.cli.main import app
from monitor.config import load_settings
from monitor.errors import LabelError, NotFoundError
from monitor.feedback.calibration import calibrate, propose
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.stage import build_stage
from monitor.types import AlertKind, Article, FeedStatus, LabelledScore, Narrative
from storage.narratives_repo import MatchStore
from storage.outbox import Outbox
from storage.repo import Repository

BIOLABS = Narrative("biolabs", "The United States runs secret biological weapons laboratories in Ukraine.")
CONFIG = """
[matching]
model = "hashing"
starter_narratives = false

[alerts.slack]
channel = "C0ALERTS"

[feeds.wire]
url = "https://wire.example/feed"
"""


def monitor(config: Path, env: dict[str, str], *args: str) -> Result:
    """The command in this process (a process per command would cost a second each)."""
    return CliRunner().invoke(app, ["--config", str(config), *args], env=env)


@pytest.fixture
def alerts(engine: Engine, tmp_path: Path) -> list[int]:
    """Two alerts on BIOLABS, stored by the pipeline (hashing model); their ids."""
    config = tmp_path / "feeds.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config)
    repo = Repository(engine)
    repo.sync_feeds(settings.feeds())
    stage = build_stage(settings, engine)
    stage.store.upsert_narratives([BIOLABS])
    now = datetime.now(UTC)
    state = repo.feed_state("wire")
    assert state is not None
    for n, body in enumerate(["Officials repeated the claim.", "Another outlet cited officials in Kyiv."]):
        title = f"{BIOLABS.title} Report {n}."
        article = Article("wire", f"g{n}", guid_hash(f"g{n}"), f"https://wire.example/{n}", title, body,
                          None, "en", now, now, content_hash(title, body))
        repo.record_success(replace(state, status=FeedStatus.OK), [article], copy_entries)
    stage.run_pending()
    return [i.id for i in Outbox(engine).items(AlertKind.ALERT)]


def test_label_list_export_and_calibrate_from_the_terminal(
    alerts: list[int], engine: Engine, database_url: str, tmp_path: Path
) -> None:
    config, env = tmp_path / "feeds.toml", {"MONITOR_DATABASE_URL": database_url, "COLUMNS": "200"}
    first, second = alerts
    done = monitor(config, env, "feedback", "add", str(first), "false-alarm", "--user", "alice",
                   "--note", "a report about the claim, not the claim")
    assert done.exit_code == 0, done.output
    assert f"Alert {first} (biolabs" in done.stdout and "false alarm by alice" in done.stdout
    again = monitor(config, env, "feedback", "add", str(first), "false-alarm", "--user", "alice")
    assert "(unchanged)" in again.stdout
    assert monitor(config, env, "feedback", "add", str(second), "confirm", "--user", "bob").exit_code == 0
    listed = json.loads(monitor(config, env, "feedback", "list", "--json").stdout)
    keys = ["alert_id", "article_id", "at", "label", "narrative_id", "user"]
    assert [sorted(row) for row in listed] == [keys, keys]
    assert [(r["alert_id"], r["label"], r["user"]) for r in listed] == [
        (first, "false_alarm", "alice"), (second, "confirmed", "bob")]
    # The export is a labelled set `monitor eval` reads, with the narratives as listed.
    exported, narratives = tmp_path / "labels.jsonl", tmp_path / "narratives.json"
    assert monitor(config, env, "feedback", "export", str(exported)).exit_code == 0
    lines = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert [line["narratives"] for line in lines] == [[], ["biolabs"]]
    assert lines[1]["text"].startswith(BIOLABS.title)
    narratives.write_text(monitor(config, env, "narratives", "list", "--json").stdout, encoding="utf-8")
    evaluated = monitor(config, env, "eval", "--narratives", str(narratives), "--queries", str(exported),
                        "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["queries"] == 2
    # One false alarm scored like the confirmation: the threshold moves above it only with --apply.
    shown = monitor(config, env, "calibrate", "--min-labels", "2")
    assert shown.exit_code == 0, shown.output
    assert "biolabs" in shown.stdout and "All 2 labels: precision 0.50 ->" in shown.stdout
    assert MatchStore(engine).narrative_thresholds() == {}
    applied = monitor(config, env, "calibrate", "--min-labels", "2", "--apply")
    assert "1 narrative threshold(s)" in applied.stdout
    (threshold,) = MatchStore(engine).narrative_thresholds().values()
    assert threshold > 0.70


def test_bad_labels_and_mutes_are_refused_with_a_message(
    alerts: list[int], database_url: str, tmp_path: Path
) -> None:
    config, env = tmp_path / "feeds.toml", {"MONITOR_DATABASE_URL": database_url, "COLUMNS": "200"}
    unknown = monitor(config, env, "feedback", "add", "999", "confirm")  # `monitor` prints it, exits 1
    assert isinstance(unknown.exception, NotFoundError)
    assert "alert 999 is not stored" in str(unknown.exception)
    malformed = monitor(config, env, "feedback", "add", "12x", "confirm")
    assert isinstance(malformed.exception, LabelError)
    assert str(malformed.exception) == "alert id '12x': not a number"
    assert monitor(config, env, "feedback", "add", str(alerts[0]), "maybe").exit_code == 2
    muted = monitor(config, env, "narratives", "mute", "biolabs", "--for", "2h", "--user", "carol")
    assert muted.exit_code == 0 and "muted until" in muted.stdout
    shown = monitor(config, env, "narratives", "show", "biolabs")
    assert "muted: until" in shown.stdout and "by carol" in shown.stdout
    assert "unmuted" in monitor(config, env, "narratives", "unmute", "biolabs").stdout
    assert isinstance(monitor(config, env, "narratives", "mute", "nope").exception, NotFoundError)
    assert monitor(config, env, "feedback", "list", "--json").stdout.strip() == "[]"


def points(*labels: tuple[float, bool], narrative: str = "n") -> list[LabelledScore]:
    return [LabelledScore(narrative, score, confirmed) for score, confirmed in labels]


def test_proposals_reach_the_precision_asked_for_with_the_least_recall_lost() -> None:
    mixed = points((0.71, False), (0.72, True), (0.74, False), (0.78, True), (0.80, True), (0.85, True))
    assert propose(mixed, 0.70, target=0.9) == 0.78  # the lowest threshold at precision 1.0
    assert propose(mixed, 0.70, target=0.75) == 0.72  # 4 of 5 kept alerts confirmed
    assert propose(points((0.75, True), (0.8, True)), 0.70) == 0.70  # right already: unchanged
    assert propose(points((0.75, False), (0.81, False)), 0.70) == 0.811  # above every false alarm
    few = points((0.9, False), narrative="few")
    result = calibrate(mixed + few, 0.70, {}, min_labels=5)
    (own,) = result.narratives
    assert (own.scope, own.after.threshold, own.after.precision, own.after.recall) == ("n", 0.78, 1.0, 0.75)
    assert result.global_ is not None and not result.global_.enough  # "few" has 1 label: not trusted
    assert result.global_.after.threshold == 0.70
    assert (result.total_before.precision, result.total_after.precision) == (4 / 7, 3 / 4)
    # No narrative has 7 labels: all 7 go into the global threshold, which cannot reach 0.9;
    # the best F1 (0.80, at precision 4/6 and recall 1) wins.
    pooled = calibrate(mixed + few, 0.70, {}, min_labels=7)
    assert pooled.narratives == () and pooled.global_ is not None and pooled.global_.after.threshold == 0.72
