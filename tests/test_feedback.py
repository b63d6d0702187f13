"""Labels on alerts, stored once with their history, and mutes (storage and the service, both databases)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from alerts.outbox_rules import copy_entries
from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, LabelError, NotFoundError
from monitor.feedback.service import FeedbackService
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.stage import build_stage
from monitor.types import AlertKind, Article, FeedStatus, Label, LabelEnd, LabelSource, Narrative
from storage.outbox import Outbox
from storage.repo import Repository

BIOLABS = Narrative("biolabs", "The United States runs secret biological weapons laboratories in Ukraine.")
CONFIG = """
[matching]
model = "hashing"
starter_narratives = false
{extra}

[alerts.slack]
channel = "C0ALERTS"

[feeds.wire]
url = "https://wire.example/feed"
name = "Wire Service"
"""


def settings_for(tmp_path: Path, extra: str = "") -> Settings:
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    return load_settings(path)


def alerted(engine: Engine, settings: Settings, title: str = BIOLABS.title) -> int:
    """Store an article that alerts on BIOLABS; the alert's id."""
    repo = Repository(engine)
    repo.sync_feeds(settings.feeds())
    stage = build_stage(settings, engine)
    stage.store.upsert_narratives([BIOLABS])
    now = datetime.now(UTC)
    guid = f"g-{title}"
    article = Article("wire", guid, guid_hash(guid), f"https://wire.example/{abs(hash(title))}", title,
                      "Officials repeated the claim.", None, "en", now, now, content_hash(title, ""))
    state = repo.feed_state("wire")
    assert state is not None
    repo.record_success(replace(state, status=FeedStatus.OK), [article], copy_entries)
    stage.run_pending()
    (alert,) = [i for i in Outbox(engine).items(AlertKind.ALERT) if i.narrative_id == BIOLABS.id]
    return alert.id


def test_a_double_click_is_one_label_and_a_change_of_mind_keeps_history(
    engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    alert_id = alerted(engine, settings)
    service = FeedbackService.from_settings(settings, engine)
    first = service.record_label(alert_id, "false_alarm", "U1", source=LabelSource.SLACK)
    again = service.record_label(str(alert_id), "false_alarm", "U1", source="slack")
    assert (first.label, first.changed, again.label, again.changed) == (
        Label.FALSE_ALARM, True, Label.FALSE_ALARM, False)
    assert first.narrative_title == BIOLABS.title and first.user == "U1"
    changed = service.record_label(alert_id, "confirm", "U2", note="it is the claim")
    assert (changed.label, changed.previous, changed.user, changed.changed) == (
        Label.CONFIRMED, Label.FALSE_ALARM, "U2", True)
    history = service.history(alert_id)
    assert [(r.label, r.user, r.current, r.ended_how) for r in history] == [
        (Label.FALSE_ALARM, "U1", False, LabelEnd.REPLACED), (Label.CONFIRMED, "U2", True, None)]
    undone = service.record_label(alert_id, "undo", "U2")
    assert (undone.label, undone.previous, undone.changed) == (None, Label.CONFIRMED, True)
    assert service.record_label(alert_id, "undo", "U2").changed is False
    assert service.outcome(alert_id).label is None
    assert [r.ended_how for r in service.history(alert_id)] == [LabelEnd.REPLACED, LabelEnd.UNDONE]
    assert service.store.labels() == []


def test_confirmation_learns_the_evidence_and_undo_forgets_it(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    alert_id = alerted(engine, settings)
    service = FeedbackService.from_settings(settings, engine)
    outcome = service.record_label(alert_id, "confirm", "U1")
    (example,) = service.store.learned(BIOLABS.id)
    assert outcome.learned_example_id == example.id and example.alert_id == alert_id
    assert example.text.startswith("The United States runs secret biological weapons")
    with engine.connect() as connection:  # re-embedded on the stage's next pass
        assert connection.execute(text("SELECT count(*) FROM narrative_vectors")).scalar_one() == 0
    service.record_label(alert_id, "undo", "U1")
    assert service.store.learned(BIOLABS.id) == []
    off = FeedbackService.from_settings(settings_for(tmp_path, "learn_from_confirmed = false"), engine)
    assert off.record_label(alert_id, "confirm", "U1").learned_example_id is None
    assert off.store.learned() == []


def test_bad_requests_are_refused_and_nothing_is_stored(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    alert_id = alerted(engine, settings)
    service = FeedbackService.from_settings(settings, engine)
    with pytest.raises(NotFoundError, match="alert 999"):
        service.record_label(999, "confirm", "U1")
    for bad in ("12a", "-3", "", "1e3", "٣"):
        with pytest.raises(LabelError, match="alert id"):
            service.record_label(bad, "confirm", "U1")
    with pytest.raises(LabelError, match="action"):
        service.record_label(alert_id, "maybe", "U1")
    with pytest.raises(LabelError, match="user"):
        service.record_label(alert_id, "confirm", " ")
    assert service.store.labels() == [] and service.history(alert_id) == []


def test_mute_and_unmute(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    alerted(engine, settings)
    service = FeedbackService.from_settings(settings, engine)
    mute = service.mute_narrative(BIOLABS.id, user="U1")
    assert timedelta(hours=23, minutes=59) < mute.until - datetime.now(UTC) <= timedelta(hours=24)
    assert [m.narrative_id for m in service.mutes()] == [BIOLABS.id]
    with pytest.raises(NotFoundError):
        service.mute_narrative("nope", user="U1")
    with pytest.raises(LabelError):
        service.mute_narrative(BIOLABS.id, datetime.now(UTC) - timedelta(hours=1), "U1")
    assert service.unmute_narrative(BIOLABS.id) is True
    assert service.unmute_narrative(BIOLABS.id) is False and service.mutes() == []


def test_a_calibrated_alert_threshold_reaches_the_matching_stage(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    alerted(engine, settings)
    store = FeedbackService.from_settings(settings, engine).store
    stage = build_stage(settings, engine)
    assert stage.scorer().thresholds.alert == 0.70
    store.store_calibration(0.55, 12, {BIOLABS.id: 0.8})
    assert (stage.scorer().thresholds.alert, stage.scorer().thresholds.watch) == (0.55, 0.55)
    assert stage.store.narrative_thresholds() == {BIOLABS.id: 0.8}
    assert store.clear_calibrated_alert_threshold() is True
    assert stage.scorer().thresholds.alert == 0.70


def test_clicks_racing_each_other_store_one_label(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    alert_id = alerted(engine, settings)
    service = FeedbackService.from_settings(settings, engine)
    start = threading.Barrier(6)

    def click(user: str) -> bool:
        start.wait()
        return service.record_label(alert_id, "false_alarm", user, source="slack").changed

    with ThreadPoolExecutor(6) as pool:
        changed = list(pool.map(click, [f"U{n}" for n in range(6)]))
    assert changed.count(True) == 1
    (only,) = service.history(alert_id)
    assert only.current and only.label is Label.FALSE_ALARM


def test_learn_from_confirmed_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"matching\.learn_from_confirmed"):
        settings_for(tmp_path, 'learn_from_confirmed = "sometimes"')
