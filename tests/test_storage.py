"""The repository on a real SQLite file and a real PostgreSQL: schema, de-duplication, state."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from monitor.ingest.dedup import content_hash, guid_hash
from monitor.types import Article, Feed, FeedState, FeedStatus, StoreOutcome
from storage.db import current_revision, upgrade
from storage.repo import Repository

T0 = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def article(feed_id: str, guid: str, url: str | None, title: str, body: str = "Body text.") -> Article:
    return Article(
        feed_id=feed_id, guid=guid, guid_hash=guid_hash(guid), url=url, title=title, text=body,
        author="A. Writer", language="en", published=T0, fetched=T0 + timedelta(minutes=5),
        content_hash=content_hash(title, body),
    )


def ok_state(repo: Repository, feed_id: str) -> FeedState:
    state = repo.feed_state(feed_id)
    assert state is not None
    return replace(state, status=FeedStatus.OK, last_success=T0)


def test_migrations_are_applied_once(engine: Engine) -> None:
    assert current_revision(engine) is not None
    upgrade(engine)  # a second run changes nothing and does not fail
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM articles")).scalar_one()
    assert count == 0


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_new_articles_are_stored_once(repo: Repository) -> None:
    repo.sync_feeds([Feed("a", "https://a.example/feed")])
    items = [article("a", "1", "https://a.example/1", "One"), article("a", "2", None, "Two")]
    first = repo.record_success(ok_state(repo, "a"), items)
    again = repo.record_success(ok_state(repo, "a"), items)
    assert [s.outcome for s in first] == [StoreOutcome.NEW, StoreOutcome.NEW]
    assert [s.outcome for s in again] == [StoreOutcome.UNCHANGED, StoreOutcome.UNCHANGED]
    assert [s.id for s in again] == [s.id for s in first]
    assert repo.article_count() == 2


def test_changed_content_updates_in_place(repo: Repository) -> None:
    repo.sync_feeds([Feed("a", "https://a.example/feed")])
    (first,) = repo.record_success(ok_state(repo, "a"), [article("a", "1", None, "Old title")])
    (second,) = repo.record_success(
        ok_state(repo, "a"), [article("a", "1", None, "New title", "Corrected body.")]
    )
    assert second.outcome is StoreOutcome.UPDATED and second.id == first.id
    ((_, stored),) = repo.articles()
    assert (stored.title, stored.text) == ("New title", "Corrected body.")
    (third,) = repo.record_success(
        ok_state(repo, "a"), [article("a", "1", None, "New title", "Corrected body.")]
    )
    assert third.outcome is StoreOutcome.UNCHANGED


def test_same_url_in_two_feeds_is_one_article(repo: Repository) -> None:
    repo.sync_feeds([Feed("a", "https://a.example/f"), Feed("b", "https://b.example/f")])
    (a,) = repo.record_success(ok_state(repo, "a"), [article("a", "x", "https://n.example/s", "S")])
    (b,) = repo.record_success(ok_state(repo, "b"), [article("b", "y", "https://n.example/s", "S!")])
    assert (b.outcome, b.id, b.duplicate_of) == (StoreOutcome.DUPLICATE, a.id, a.id)
    assert repo.article_count() == 1
    assert (repo.article_count("a"), repo.article_count("b")) == (1, 1)
    (again,) = repo.record_success(ok_state(repo, "b"), [article("b", "y", "https://n.example/s", "S!")])
    assert again.outcome is StoreOutcome.UNCHANGED


def test_identical_text_under_another_url_is_linked(repo: Repository) -> None:
    repo.sync_feeds([Feed("a", "https://a.example/f"), Feed("b", "https://b.example/f")])
    (a,) = repo.record_success(ok_state(repo, "a"), [article("a", "1", "https://a.example/1", "Same")])
    (b,) = repo.record_success(ok_state(repo, "b"), [article("b", "9", "https://b.example/9", "same ")])
    assert (b.outcome, b.duplicate_of) == (StoreOutcome.DUPLICATE, a.id)
    assert b.id != a.id and repo.article_count() == 2


def test_datetimes_come_back_aware_utc(repo: Repository) -> None:
    repo.sync_feeds([Feed("a", "https://a.example/f")])
    repo.record_success(ok_state(repo, "a"), [article("a", "1", None, "T")])
    ((_, stored),) = repo.articles()
    assert stored.published == T0 and stored.published.tzinfo is not None
    state = repo.feed_state("a")
    assert state is not None and state.last_success == T0


def test_changing_a_feeds_url_resets_its_state(repo: Repository) -> None:
    repo.sync_feeds([Feed("a", "https://a.example/f")])
    failing = replace(ok_state(repo, "a"), status=FeedStatus.GONE, etag='"v1"',
                      consecutive_errors=4, last_error="HTTP 410 Gone")
    repo.save_feed_state(failing)
    repo.sync_feeds([Feed("a", "https://a.example/f")])
    assert repo.feed_state("a") == failing  # same URL: state kept
    repo.sync_feeds([Feed("a", "https://a.example/new")])
    assert repo.feed_state("a") == FeedState("a", "https://a.example/new")


def test_concurrent_stores_of_one_url_make_one_article(repo: Repository) -> None:
    feeds = [Feed(f"f{i}", f"https://f{i}.example/") for i in range(6)]
    repo.sync_feeds(feeds)
    barrier = threading.Barrier(len(feeds))

    def store(feed: Feed) -> None:
        barrier.wait()
        items = [article(feed.id, f"g{n}", f"https://news.example/{n}", f"T{n}") for n in range(5)]
        repo.record_success(ok_state(repo, feed.id), items)

    threads = [threading.Thread(target=store, args=(feed,)) for feed in feeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert repo.article_count() == 5
    assert all(repo.article_count(feed.id) == 5 for feed in feeds)


def test_feed_reports(repo: Repository) -> None:
    repo.sync_feeds([Feed("a", "https://a.example/f"), Feed("old", "https://old.example/f")])
    repo.record_success(ok_state(repo, "a"), [article("a", "1", None, "T")])
    configured = [Feed("a", "https://a.example/f"), Feed("off", "https://off.example/", enabled=False)]
    repo.sync_feeds(configured)
    reports = {r.id: r for r in repo.feed_reports(configured)}
    assert reports["a"].status is FeedStatus.OK and reports["a"].article_count == 1
    assert reports["off"].status is FeedStatus.DISABLED
    assert reports["old"].status is FeedStatus.REMOVED
    assert list(reports) == ["a", "off", "old"]
