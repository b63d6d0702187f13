"""Where analysts' feedback meets the flood guard and retention: nothing labelled or muted leaks out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine, insert, select

from alerts.message import SlackMessage
from monitor.feedback.service import FeedbackService
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.service.delivery import Deliverer
from monitor.types import Article, Feed, Match, Narrative, PrunePlan, Tier
from storage.feedback_repo import FeedbackStore
from storage.narratives_repo import MatchStore
from storage.outbox import Outbox
from storage.repo import Repository
from storage.retention import prune
from storage.tables import AlertRow, ArticleRow

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def _articles(engine: Engine, ages: dict[str, timedelta]) -> dict[str, int]:
    """Stored articles matched on narrative n1 (the first, oldest one is n1's first match)."""
    repo = Repository(engine)
    repo.sync_feeds([Feed("f", "https://f.example/feed")])
    state = repo.feed_state("f")
    assert state is not None
    articles = [Article(feed_id="f", guid=g, guid_hash=guid_hash(g), url=f"https://f.example/{g}",
                        title=f"Title {g}", text=f"Body {g}.", author=None, language="en",
                        published=NOW - age, fetched=NOW - age, content_hash=content_hash(f"Title {g}", g))
                for g, age in ages.items()]
    stored = repo.record_success(state, articles)
    ids = {g: s.id for g, s in zip(ages, stored, strict=True) if s.id is not None}
    store = MatchStore(engine, clock=lambda: NOW - 300 * DAY)
    store.upsert_narratives([Narrative(id="n1", title="Claim one")])
    passages = {aid: (["p0"], np.ones((1, 4), dtype=np.float32)) for aid in ids.values()}
    store.save_passages_and_matches("m", passages, [Match(aid, "n1", 0.8, Tier.ALERT, "p0", "p0")
                                                   for aid in sorted(ids.values())])
    return ids


def _alert(engine: Engine, key: str, kind: str, article_id: int | None, status: str, age: timedelta,
           channel: str = "#c") -> int:
    with engine.begin() as connection:
        return int(connection.execute(insert(AlertRow).returning(AlertRow.id), [{
            "key": key, "kind": kind, "channel": channel, "status": status, "article_id": article_id,
            "narrative_id": "n1", "parent_id": None, "attempts": 0,
            "next_attempt_at": NOW - age, "created_at": NOW - age}]).scalar_one())


class Recorder:
    """A Slack sender that keeps what it was asked to post."""

    supports_threads = True

    def __init__(self) -> None:
        self.posts: list[str] = []

    def post(self, channel: str, message: SlackMessage, thread_ts: str | None = None) -> str:
        self.posts.append(repr(message))
        return f"{len(self.posts)}.0"


def test_old_suppressed_and_held_alerts_are_pruned_with_their_articles(engine: Engine) -> None:
    ids = _articles(engine, {"first": 300 * DAY, "suppressed": 200 * DAY, "held": 200 * DAY,
                             "sent": 200 * DAY})
    for key, status in (("suppressed", "suppressed"), ("held", "held"), ("sent", "sent")):
        _alert(engine, key, "alert", ids[key], status, 200 * DAY)
    cut = NOW - 30 * DAY
    prune(engine, PrunePlan(texts_before=cut, vectors_before=cut, alerts_before=cut,
                            keep_published_since=NOW - 7 * DAY, backfill_since=NOW - 7 * DAY,
                            keep_alerted_since=NOW - 2 * DAY))
    with engine.connect() as connection:
        assert set(connection.scalars(select(AlertRow.key))) == set()
        assert set(connection.scalars(select(ArticleRow.id))) == {ids["first"]}


def test_a_false_alarm_is_not_listed_in_another_channels_flood_summary(engine: Engine) -> None:
    ids = _articles(engine, {"a1": DAY, "a2": DAY})
    # a2 went out on #a; on #b the flood guard held it for a summary that is now due.
    sent = _alert(engine, "k1", "alert", ids["a2"], "sent", timedelta(minutes=5), "#a")
    _alert(engine, "k2", "alert", ids["a2"], "held", timedelta(minutes=5), "#b")
    _alert(engine, "summary", "summary", None, "pending", timedelta(minutes=5), "#b")
    service = FeedbackService(FeedbackStore(engine), learn_from_confirmed=False)
    service.record_label(sent, "false_alarm", "ana")

    slack = Recorder()
    Deliverer(Outbox(engine), slack, gap=0).deliver_due()
    assert not any("Title a2" in post for post in slack.posts)


def test_alerts_held_before_a_mute_do_not_surface_in_a_later_summary(engine: Engine) -> None:
    ids = _articles(engine, {"a1": DAY, "a2": DAY, "a3": DAY})
    _alert(engine, "k2", "alert", ids["a2"], "held", timedelta(minutes=50))
    _alert(engine, "summary1", "summary", None, "pending", timedelta(minutes=50))
    service = FeedbackService(FeedbackStore(engine), learn_from_confirmed=False)
    service.mute_narrative("n1", NOW + timedelta(hours=1), "ana")
    service.unmute_narrative("n1")
    # After the mute, a new flood in a new window.
    _alert(engine, "k3", "alert", ids["a3"], "held", timedelta(minutes=1))
    _alert(engine, "summary2", "summary", None, "pending", timedelta(minutes=1))

    slack = Recorder()
    Deliverer(Outbox(engine), slack, gap=0).deliver_due()
    assert len(slack.posts) == 1 and "Title a3" in slack.posts[0]
    assert "Title a2" not in slack.posts[0]
