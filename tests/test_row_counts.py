"""The row counters of migration 0009 against fresh count(*) queries (real SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, delete, func, insert, inspect, select, text, update
from test_ops import T0, populate
from test_retention import NOW, _fill

from monitor.ingest.dedup import content_hash, guid_hash
from monitor.types import AlertStatus, Article, Feed, FeedState, FeedStatus, Match, Narrative, PrunePlan, Tier
from storage.db import MIGRATIONS, open_engine, upgrade
from storage.narratives_repo import MatchStore
from storage.ops_repo import read_figures
from storage.outbox import Outbox
from storage.repo import Repository
from storage.retention import prune
from storage.tables import AlertRow, ArticleRow, MatchRow

Counts = tuple[int, dict[str, int], dict[str, int]]
DAY = timedelta(days=1)


def counted(engine: Engine) -> Counts:
    """Articles, matches per tier and alerts per status as `monitor status` reads them."""
    figures = read_figures(engine, [])
    return (figures.articles, {k: v for k, v in figures.matches.items() if v},
            {k: v for k, v in figures.alerts.items() if v})


def fresh(engine: Engine) -> Counts:
    """The same, counted from the tables now."""
    with engine.connect() as connection:
        articles = connection.scalar(select(func.count()).select_from(ArticleRow)) or 0
        tiers = connection.execute(select(MatchRow.tier, func.count()).group_by(MatchRow.tier)).all()
        statuses = connection.execute(select(AlertRow.status, func.count()).group_by(AlertRow.status)).all()
    return articles, {k: int(v) for k, v in tiers}, {k: int(v) for k, v in statuses}


def test_counters_follow_repositories_status_and_tier_changes(engine: Engine) -> None:
    populate(engine)  # articles through the poller's path, matches, outbox sent/failed/pending
    assert counted(engine) == fresh(engine) == (3, {"alert": 2, "watch": 1},
                                                {"sent": 1, "failed": 1, "pending": 1})
    outbox = Outbox(engine, clock=lambda: T0)
    pending = [item.id for item in outbox.items() if item.status is AlertStatus.PENDING]
    assert outbox.claim(pending[0])  # pending -> sending
    assert counted(engine) == fresh(engine)
    outbox.settle(pending[0], AlertStatus.SENT, ts="2.0")
    outbox.settle_many([outbox.add_test("#d"), outbox.add_test("#e")], AlertStatus.MERGED)
    assert counted(engine)[2] == {"sent": 2, "failed": 1, "merged": 2}
    # A rescored match is updated in place: counted when its tier changes, not when only its score does.
    store = MatchStore(engine, clock=lambda: T0)
    match = store.matches()[0]
    for score, tier in ((0.5, Tier.WATCH), (0.52, Tier.WATCH)):
        store.save_passages_and_matches("model", {}, [Match(match.article_id, match.narrative_id, score,
                                                            tier, "p", "e")])
        assert counted(engine)[1] == {"alert": 1, "watch": 2} and counted(engine) == fresh(engine)
    with engine.begin() as connection:  # a hand-typed bulk delete is counted too
        connection.execute(delete(AlertRow).where(AlertRow.status == AlertStatus.MERGED.value))
        connection.execute(update(AlertRow).values(attempts=AlertRow.attempts + 1))
    assert counted(engine) == fresh(engine)


def test_counters_follow_retention(engine: Engine) -> None:
    _fill(engine)
    before = counted(engine)
    done = prune(engine, PrunePlan(texts_before=NOW - 100 * DAY, vectors_before=NOW - 7 * DAY,
                                   alerts_before=NOW - 100 * DAY, keep_published_since=NOW - 160 * DAY,
                                   backfill_since=NOW - 7 * DAY, keep_alerted_since=NOW - 100 * DAY, batch=1))
    assert done.articles and done.matches and done.alerts
    after = counted(engine)
    assert after == fresh(engine)
    assert after[0] == before[0] - done.articles
    assert sum(after[2].values()) == sum(before[2].values()) - done.alerts


def test_concurrent_writers_keep_exact_counts(engine: Engine) -> None:
    """Threads on their own connections, adding to two keys in opposite orders: on PostgreSQL
    writers that shared a counter row would deadlock on it."""
    feeds = [Feed(f"f{i}", f"https://f{i}.example/rss") for i in range(8)]
    Repository(engine).sync_feeds(feeds)
    MatchStore(engine).upsert_narratives([Narrative("n1", "Claim one")])

    def write(feed: Feed) -> None:
        repo, store, outbox = Repository(engine), MatchStore(engine), Outbox(engine)
        for round_ in range(10):
            articles = [_article(feed.id, f"{round_}-{n}") for n in range(3)]
            stored = repo.record_success(FeedState(feed.id, feed.url, FeedStatus.OK), articles)
            ids = [s.id for s in stored if s.id is not None]
            tiers = [Tier.ALERT, Tier.WATCH] if int(feed.id[1:]) % 2 else [Tier.WATCH, Tier.ALERT]
            store.save_passages_and_matches("m", {}, [
                Match(aid, "n1", 0.8, tiers[n % 2], "p", "e") for n, aid in enumerate(ids)])
            outbox.settle(outbox.add_test(f"#{feed.id}"), AlertStatus.SENT, ts="1.0")

    with ThreadPoolExecutor(len(feeds)) as pool:
        for future in [pool.submit(write, feed) for feed in feeds]:
            future.result()
    assert counted(engine) == fresh(engine)
    assert counted(engine)[0] == 8 * 10 * 3 and counted(engine)[2] == {"sent": 8 * 10}


def test_a_writer_never_waits_for_another_writers_counter_row(engine: Engine) -> None:
    """PostgreSQL: while one transaction holds its counter rows, another adding to the same keys
    commits at once (SQLite has one writer at a time: nothing to share)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers take turns")
    populate(engine)
    other = {"n1": "n2", "n2": "n1"}  # each article with the narrative it has no match for yet
    pairs = [(match.article_id, other[match.narrative_id]) for match in MatchStore(engine).matches()]
    rows = [{"article_id": aid, "narrative_id": nid, "score": 0.9, "tier": tier, "passage": "p",
             "evidence": "e", "model_id": "m", "created_at": T0, "updated_at": T0}
            for (aid, nid), tier in zip(pairs, ("alert", "watch", "alert"), strict=True)]
    with engine.connect() as first, engine.connect() as second:
        first.execute(insert(MatchRow), rows[:1])  # holds a counter row of ("matches", "alert")
        second.execute(text("SET LOCAL lock_timeout = '3s'"))
        second.execute(insert(MatchRow), rows[1:][::-1])  # "alert" and "watch"
        second.commit()
        first.commit()
    assert counted(engine) == fresh(engine) and counted(engine)[1] == {"alert": 4, "watch": 2}


def test_upgrade_counts_rows_already_there_and_downgrade_drops_the_counters(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        upgrade(engine, "0008")
        populate(engine)
        upgrade(engine)
        assert counted(engine) == fresh(engine) == (3, {"alert": 2, "watch": 1},
                                                    {"sent": 1, "failed": 1, "pending": 1})
        _downgrade(engine, "0008")
        assert "row_counts" not in inspect(engine).get_table_names()
        Outbox(engine).add_test("#z")  # no trigger is left behind to write to a missing table
        upgrade(engine)
        assert counted(engine) == fresh(engine) and counted(engine)[2]["pending"] == 2
    finally:
        engine.dispose()


def test_truncate_zeroes_the_counters_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    populate(engine)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE alerts CASCADE"))
    assert counted(engine) == fresh(engine) and counted(engine)[2] == {}


def _downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _article(feed_id: str, guid: str) -> Article:
    moment = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    return Article(feed_id=feed_id, guid=guid, guid_hash=guid_hash(guid),
                   url=f"https://{feed_id}.example/{guid}",
                   title=f"Title {guid}", text=f"Body of {guid}.", author=None, language="en",
                   published=moment, fetched=moment, content_hash=content_hash(f"{feed_id} {guid}", guid))
