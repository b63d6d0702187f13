"""Retention: `monitor storage prune` deletes old rows and keeps each kind of row still needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, insert, select

from monitor.config import load_settings, parse_config
from monitor.errors import ConfigError
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.types import Article, Feed, Match, Narrative, Tier
from storage.db import open_engine, upgrade
from storage.narratives_repo import MatchStore
from storage.repo import Repository
from storage.tables import AlertRow, ArticlePassageRow, ArticleRow, ArticleSourceRow, DigestRow, MatchRow

from feedserver import FeedServer, Response

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
RSS = "application/rss+xml"


def _article(guid: str, age: timedelta) -> Article:
    moment = NOW - age
    return Article(feed_id="f", guid=guid, guid_hash=guid_hash(guid), url=f"https://f.example/{guid}",
                   title=f"Title {guid}", text=f"Body of {guid}.", author=None, language="en",
                   published=moment, fetched=moment, content_hash=content_hash(f"Title {guid}", guid))


def _alert(engine: Engine, key: str, article_id: int, status: str, age: timedelta,
           parent: int | None = None) -> int:
    with engine.begin() as connection:
        return int(connection.execute(insert(AlertRow).returning(AlertRow.id), [{
            "key": key, "kind": "reply" if parent else "alert", "channel": "#c", "status": status,
            "article_id": article_id, "narrative_id": "n1", "parent_id": parent, "attempts": 0,
            "next_attempt_at": NOW - age, "created_at": NOW - age}]).scalar_one())


def _fill(engine: Engine) -> dict[str, int]:
    """One article per keep-rule (and two that go), with vectors, matches, alerts and digests."""
    repo = Repository(engine)
    repo.sync_feeds([Feed("f", "https://f.example/feed")])
    ages = {"first": 300 * DAY, "old": 200 * DAY, "pending": 200 * DAY, "sent": 200 * DAY,
            "threaded": 200 * DAY, "undigested": 150 * DAY, "month": 30 * DAY, "fresh": DAY}
    state = repo.feed_state("f")
    assert state is not None
    stored = repo.record_success(state, [_article(guid, age) for guid, age in ages.items()])
    ids = {guid: s.id for guid, s in zip(ages, stored, strict=True) if s.id is not None}
    store = MatchStore(engine, clock=lambda: NOW - 300 * DAY)
    store.upsert_narratives([Narrative(id="n1", title="Claim one"), Narrative(id="n2", title="Claim two")])
    passages = {aid: (["p0", "p1"], np.ones((2, 4), dtype=np.float32)) for aid in ids.values()}
    matches = [Match(aid, "n1", 0.8, Tier.ALERT, "p0", "p0") for aid in ids.values()]
    store.save_passages_and_matches("m", passages, matches)
    _alert(engine, "pending", ids["pending"], "pending", 200 * DAY)
    _alert(engine, "sent", ids["sent"], "sent", 200 * DAY)
    parent = _alert(engine, "parent", ids["threaded"], "sent", 200 * DAY)
    _alert(engine, "reply", ids["fresh"], "pending", DAY, parent=parent)
    with engine.begin() as connection:  # digests went out but one day failed 150 days ago
        connection.execute(insert(DigestRow), [
            {"period": (NOW - age).date().isoformat(), "status": status, "attempts": 1, "updated_at": NOW}
            for age, status in ((2 * DAY, "sent"), (148 * DAY, "failed"), (250 * DAY, "sent"))])
    return ids


def monitor(*args: str, database_url: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "monitor.cli.main", "--config", str(config), *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_prune_deletes_old_rows_and_keeps_what_is_needed(
    database_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    engine = open_engine(database_url)
    upgrade(engine)
    ids = _fill(engine)
    # The feed still carries the pruned item: it must not come back as a new article.
    items = "<item><guid>old</guid><link>https://f.example/old</link><title>Title old</title></item>"
    feed_server.route("/f", Response(200, f'<rss version="2.0"><channel>{items}</channel></rss>'.encode(),
                                     {"Content-Type": RSS}))
    config = tmp_path / "feeds.toml"
    config.write_text(f'[matching]\nmodel = "hashing"\nmultilingual_model = ""\n'
                      f'[feeds.f]\nurl = "{feed_server.url("/f")}"\n')

    done = monitor("storage", "prune", "--json", database_url=database_url, config=config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"articles": 2, "matches": 2, "passages": 2 * 2 + 5 * 2, "alerts": 1}
    with engine.connect() as connection:
        kept = set(connection.scalars(select(ArticleRow.id)))
        embedded = set(connection.scalars(select(ArticlePassageRow.article_id)))
        alerts = set(connection.scalars(select(AlertRow.key)))
        keys = connection.execute(select(ArticleSourceRow.guid_hash, ArticleSourceRow.article_id)).all()
    gone = {ids["old"], ids["sent"]}
    assert kept == set(ids.values()) - gone
    assert alerts == {"pending", "parent", "reply"}
    assert embedded == {ids["fresh"]}  # only articles within vector_retention (7 days) keep vectors
    assert len(keys) == len(ids) and sum(article is None for _hash, article in keys) == 2
    # `feeds list` still counts every item the feed delivered.
    assert Repository(engine).feed_reports([Feed("f", "https://f.example/feed")])[0].article_count == len(ids)

    done = monitor("poll", "--once", database_url=database_url, config=config)
    assert done.returncode == 0, done.stderr
    assert "1 ok, 0 failed; 0 new article(s)" in done.stdout
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ArticleRow)) == len(kept)
        # Articles whose vectors were pruned are not embedded again by the matching pass.
        assert set(connection.scalars(select(ArticlePassageRow.article_id))) == {ids["fresh"]}
        assert connection.scalar(select(func.count()).select_from(MatchRow)) == len(kept)
    engine.dispose()


def test_run_schedules_pruning(tmp_path: Path) -> None:
    from monitor.cli.main import _periodic_jobs
    from monitor.flow import Flow

    config = tmp_path / "feeds.toml"
    config.write_text('[storage]\nprune_interval = "30m"\n[matching]\nmodel = "hashing"\n')
    settings = load_settings(config)
    engine = open_engine(f"sqlite:///{tmp_path}/monitor.db")
    upgrade(engine)
    repo = Repository(engine)
    repo.sync_feeds([Feed("f", "https://f.example/feed")])
    state = repo.feed_state("f")
    assert state is not None
    repo.record_success(state, [_article("ancient", 100 * DAY), _article("recent", DAY)])
    jobs = {name: (job, every) for name, job, every in _periodic_jobs(Flow(settings, engine), match=list)}
    job, every = jobs["prune"]
    assert every == 1800.0
    job()
    assert [a.guid for _id, a in repo.articles()] == ["recent"]
    engine.dispose()


@pytest.mark.parametrize(("storage", "problem"), [
    ('retention = "3d"', "storage.retention: must be 0 (keep forever) or at least 14 days"),
    ('vector_retention = "1d"', "storage.vector_retention: must be 0 (as long as the texts) or at least 2"),
    ('retention = "20d"\nvector_retention = "30d"', "storage: vector_retention must not be longer than"),
    ('vector_retention = "3d"', "storage.vector_retention: must be at least matching.backfill_days (7"),
    ('prune_interval = "10s"', "storage.prune_interval: must be at least 60 seconds"),
])
def test_retention_keys_are_validated(storage: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"[storage]\n{storage}\n".encode(), Path("feeds.toml"))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_zero_keeps_everything() -> None:
    file = parse_config(b"[storage]\nretention = 0\nvector_retention = 0\n", Path("feeds.toml"))
    assert (file.storage.retention, file.storage.vector_retention) == (0, 0)


def test_migration_keeps_keys_and_counts_them(database_url: str) -> None:
    engine = open_engine(database_url)
    upgrade(engine, "0004")
    at = "2026-01-01 00:00:00"
    with engine.begin() as connection:  # rows as 0004 knew them
        connection.exec_driver_sql(
            "INSERT INTO feeds (id, config_url, url, status, consecutive_errors, created_at) "
            f"VALUES ('f', 'https://f.example/feed', 'https://f.example/feed', 'ok', 0, '{at}')")
        for n in (1, 2):
            connection.exec_driver_sql(
                "INSERT INTO articles (id, feed_id, guid, guid_hash, title, text, published_at, fetched_at, "
                f"content_hash) VALUES ({n}, 'f', 'g{n}', 'h{n}', 'T', 'B', '{at}', '{at}', 'c{n}')")
            connection.exec_driver_sql("INSERT INTO article_sources (feed_id, guid_hash, article_id, "
                                       f"first_seen_at) VALUES ('f', 'h{n}', {n}, '{at}')")
    upgrade(engine)
    assert Repository(engine).feed_reports([Feed("f", "https://f.example/feed")])[0].article_count == 2
    with engine.connect() as connection:
        assert set(connection.execute(select(ArticleSourceRow.guid_hash, ArticleSourceRow.article_id))) == {
            ("h1", 1), ("h2", 2)}
    engine.dispose()


def test_prune_keeps_alerts_analysts_labelled(database_url: str, tmp_path: Path) -> None:
    """A label is what calibration learns from: its alert and article outlive `retention`."""
    engine = open_engine(database_url)
    upgrade(engine)
    ids = _fill(engine)
    with engine.connect() as connection:
        sent = connection.scalar(select(AlertRow.id).where(AlertRow.key == "sent"))
    config = tmp_path / "feeds.toml"
    config.write_text('[matching]\nmodel = "hashing"\nmultilingual_model = ""\n')
    done = monitor("feedback", "add", str(sent), "false-alarm", "--user", "ana",
                   database_url=database_url, config=config)
    assert done.returncode == 0, done.stderr

    done = monitor("storage", "prune", "--json", database_url=database_url, config=config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["alerts"] == 0  # without the label: 1 (the test above)
    with engine.connect() as connection:
        assert sent in set(connection.scalars(select(AlertRow.id)))
        assert ids["sent"] in set(connection.scalars(select(ArticleRow.id)))
        # Its lead vector too: a false alarm holds back near-identical leads however old it is.
        assert ids["sent"] in set(connection.scalars(select(ArticlePassageRow.article_id)))
    listed = monitor("feedback", "list", "--json", database_url=database_url, config=config)
    assert [(row["alert_id"], row["label"]) for row in json.loads(listed.stdout)] == [(sent, "false_alarm")]
    engine.dispose()


def test_vector_retention_must_cover_the_stories_window() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(b'[storage]\nvector_retention = "8d"\n[stories]\nwindow = "10d"\n', Path("f.toml"))
    assert "storage.vector_retention: must be at least stories.window" in str(caught.value)
