"""Stories end to end: stored articles -> matching stage (hashing embedder) -> story update -> the
database, the CLI, promotion, the Slack stand-in and the digest."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from alerts.outbox_rules import copy_entries
from alerts.slack import BotSender
from monitor.cli.main import app
from monitor.config import Settings, load_settings
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.matching.stage import MatchStage, build_stage
from monitor.service.delivery import Deliverer
from monitor.stories.update import StoryUpdater, build_updater
from monitor.types import Article, FeedStatus, Tier
from storage.db import open_engine
from storage.outbox import Outbox
from storage.repo import Repository
from storage.stories_repo import StoryStore

from slackserver import TOKEN, SlackServer

OUTLETS = 12
CONFIG = """
[matching]
model = "hashing"
starter_narratives = false

[stories]
similarity = 0.35
min_outlets = 3
min_growth = 3
carrier_tags = ["state"]
min_carrier_outlets = 1
slack_channel = "{channel}"

[alerts.slack]
channel = "C0ALERTS"
""" + "".join(
    f'\n[feeds.o{i}]\nurl = "https://o{i}.example/feed"\nname = "Outlet {i}"\ntags = [{tag}]\n'
    for i, tag in enumerate(['"state"'] + ['"local"'] * (OUTLETS - 1))
)
# One invented event told in each outlet's own words; the same key words carry the story.
AURORA = [
    ("Grain ship Aurora runs aground in the Bosphorus, strait closed",
     "The wheat carrier Aurora ran aground off Istanbul and the Bosphorus strait was closed to traffic."),
    ("Bosphorus strait closed after the grain carrier Aurora grounds near Istanbul",
     "Tugs try to refloat the Aurora, a wheat ship stuck in the Bosphorus strait off Istanbul."),
    ("Aurora, a wheat ship, stuck in the Bosphorus: Istanbul closes the strait",
     "Traffic through the Bosphorus strait stopped after the grain ship Aurora ran aground at Istanbul."),
    ("Istanbul: grain freighter Aurora aground, Bosphorus strait shut",
     "The Bosphorus strait is shut while tugs work to free the grounded wheat carrier Aurora near Istanbul."),
]
CABLE = [
    ("Undersea data cable between Finland and Estonia cut by a ship's anchor",
     "Police suspect a cargo ship dragged its anchor and cut the Finland Estonia data cable."),
    ("Finland Estonia undersea cable damaged, anchor of cargo ship suspected",
     "The data cable under the gulf between Finland and Estonia was cut; a ship anchor is suspected."),
    ("Police board cargo ship after Finland Estonia data cable is cut",
     "Investigators say the anchor of a cargo ship cut the undersea data cable of Finland and Estonia."),
]
UNRELATED = [
    ("Local football club wins the regional cup final", "Fans celebrated in the old town until midnight."),
    ("Central bank keeps interest rates unchanged", "Inflation slowed in October, the governor said."),
    ("New museum of modern art opens in the harbour", "The collection holds four hundred paintings."),
    ("Heavy snowfall expected in the mountains this weekend", "Drivers are asked to carry winter chains."),
]


def settings_for(tmp_path: Path, channel: str = "") -> Settings:
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG.format(channel=channel), encoding="utf-8")
    return load_settings(path)


class World:
    """A database with twelve outlets (o0 tagged "state"), the matching stage and the story update."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.repo = Repository(engine)
        self.repo.sync_feeds(settings.feeds())
        self.stage: MatchStage = build_stage(settings, engine)
        self.updater: StoryUpdater = build_updater(settings, engine)
        self.store = StoryStore(engine)
        self._n = 0

    def publish(self, feed: str, title: str, text: str, *, hours_ago: float = 1.0) -> int:
        self._n += 1
        guid = f"{feed}-{self._n}"
        when = datetime.now(UTC) - timedelta(hours=hours_ago)
        article = Article(feed, guid, guid_hash(guid), f"https://{feed}.example/{guid}", title, text, None,
                          "en", when, when, content_hash(title, text))
        state = self.repo.feed_state(feed)
        assert state is not None
        (stored,) = self.repo.record_success(replace(state, status=FeedStatus.OK), [article], copy_entries)
        return stored.id

    def update(self) -> None:
        self.stage.run_pending()
        self.updater.run()


def test_retellings_form_a_story_and_unrelated_news_does_not(engine: Engine, tmp_path: Path) -> None:
    world = World(engine, settings_for(tmp_path))
    aurora = [world.publish(f"o{i}", *told) for i, told in enumerate(AURORA)]
    cable = [world.publish(f"o{i + 4}", *told) for i, told in enumerate(CABLE)]
    loose = [world.publish(f"o{i + 7}", *item) for i, item in enumerate(UNRELATED)]
    world.update()
    stories = world.store.stories()
    assert len(stories) == 2
    members = {s.label: set(s.urls) for s in stories}
    by_size = sorted(stories, key=lambda s: -s.size)
    assert [s.size for s in by_size] == [4, 3] and [len(s.outlets) for s in by_size] == [4, 3]
    assert {u.rsplit("/", 1)[1] for u in by_size[0].urls} == {f"o{i}-{aurora[i]}" for i in range(4)}
    assert "aurora" in by_size[0].terms and "bosphorus" in by_size[0].terms
    assert "cable" in by_size[1].terms
    assert {u.rsplit("/", 1)[1] for u in by_size[1].urls} == {f"o{i + 4}-{cable[i]}" for i in range(3)}
    assert not any(f"-{a}" in url for a in loose for urls in members.values() for url in urls)
    assert by_size[0].emerging  # four new sources in the growth window, one a "state" carrier
    assert not by_size[1].emerging  # no outlet of it carries narratives


def test_a_story_keeps_its_id_across_runs_and_restarts(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    first_engine = open_engine(database_url)
    from storage.db import upgrade

    upgrade(first_engine)
    world = World(first_engine, settings)
    for i, told in enumerate(AURORA[:3]):
        world.publish(f"o{i}", *told, hours_ago=5)
    world.update()
    (story,) = world.store.stories()
    first_seen = story.first_seen
    world.publish("o5", *UNRELATED[0])
    world.update()  # nothing new for the story: same id, same size
    assert [(s.id, s.size) for s in world.store.stories()] == [(story.id, 3)]
    first_engine.dispose()

    restarted = World(open_engine(database_url), settings)  # a new engine, stage and updater
    restarted.publish("o3", *AURORA[3])
    restarted.update()
    (after,) = restarted.store.stories()
    assert (after.id, after.size, after.first_seen) == (story.id, 4, first_seen)
    shown = restarted.store.story(story.id)
    assert shown is not None and shown.history and shown.history[-1][1] == 4
    restarted.engine.dispose()


def test_ten_copies_of_one_wire_story_are_one_source(engine: Engine, tmp_path: Path) -> None:
    world = World(engine, settings_for(tmp_path))
    title, text = AURORA[0]
    for i in range(10):  # the same text under ten URLs: stored as copies of the first
        world.publish(f"o{i}", title, text)
    world.update()
    assert world.store.stories() == []  # one source, however many sites carried it
    world.publish("o10", *AURORA[1])
    world.publish("o11", *AURORA[2])
    world.update()
    (story,) = world.store.stories()
    assert story.sources == 3 and len(story.outlets) == 3 and story.size == 12
    assert len(story.urls) == 12


def test_promoting_a_story_makes_the_next_retelling_alert(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    world = World(engine, settings)
    for i, told in enumerate(AURORA[:3]):
        world.publish(f"o{i}", *told)
    world.update()
    (story,) = world.store.stories()
    edit = tmp_path / "promoted.yaml"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # in this process: the command sets up logging on the runner's stream, put back after
        result = CliRunner().invoke(app, ["--config", str(settings.path), "narratives", "promote",
                                          str(story.id), "--out", str(edit)],
                                    env={"MONITOR_DATABASE_URL": _url(engine)})
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    assert f"story-{story.id}" in result.output and "Ready to edit" in result.output
    narrative = world.stage.store.narrative(f"story-{story.id}")
    assert narrative is not None and narrative.title == story.label and len(narrative.examples) == 2
    assert "monitor narratives import" in edit.read_text(encoding="utf-8")
    fresh = world.publish("o9", "Grain ship Aurora aground in the Bosphorus, Istanbul closes the strait",
                          "The wheat carrier Aurora ran aground and the Bosphorus strait was closed.")
    run = world.stage.run_pending()
    alerts = [m for m in run.new_matches if m.article_id == fresh and m.tier is Tier.ALERT]
    assert [m.narrative_id for m in alerts] == [narrative.id]
    promoted = world.store.story(story.id)
    assert promoted is not None and promoted.promoted_to == narrative.id


def test_an_emerging_story_is_posted_to_slack_exactly_once(engine: Engine, tmp_path: Path) -> None:
    world = World(engine, settings_for(tmp_path, channel="C0STORIES"))
    with SlackServer(channels=("C0STORIES", "C0ALERTS")) as slack:
        deliverer = Deliverer(Outbox(engine), BotSender(TOKEN, slack.api_url), gap=0.0)
        for i, told in enumerate(AURORA[:3]):
            world.publish(f"o{i}", *told)
        world.update()
        world.update()  # still emerging: nothing new to post
        world.publish("o3", *AURORA[3])
        world.update()
        deliverer.flush(10)
        posted = slack.messages_in("C0STORIES")
        assert len(posted) == 1
        assert "Emerging story" in posted[0].text and "Aurora" in posted[0].text
        world.update()
        deliverer.flush(5)
        assert len(slack.messages_in("C0STORIES")) == 1 and slack.messages_in("C0ALERTS") == []


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_digest_lists_emerging_stories_and_preview_inlines_the_chart(engine: Engine, tmp_path: Path) -> None:
    from monitor.flow import make_digest_service

    settings = settings_for(tmp_path)
    world = World(engine, settings)
    for i, told in enumerate(AURORA):
        world.publish(f"o{i}", *told)
    world.update()
    service = make_digest_service(settings, engine)
    today = datetime.now(UTC).date()
    preview = service.preview(today, tmp_path / "preview.html")
    html = preview.read_text(encoding="utf-8")
    assert "Emerging stories" in html and "Aurora" in html and "4 outlets" in html
    assert "cid:" not in html and 'src="data:image/png;base64,' in html
    message = service._render(today)  # the email keeps its inline part referenced by Content-ID
    body = message.get_body(("html",))
    assert body is not None and "cid:" in str(body.get_content())
    text = message.get_body(("plain",))
    assert text is not None and "EMERGING STORIES" in str(text.get_content())
    assert not service.store.emerged_stories(*_day_before(today))


def _day_before(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day - timedelta(days=3), datetime.min.time(), UTC)
    return start, start + timedelta(days=1)


@pytest.fixture(autouse=True)
def _no_slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)


def test_the_default_models_put_retellings_in_three_languages_in_one_story(default_embedder: object) -> None:
    """The one test with the real models: the stored dual vector, cut to its multilingual half."""
    from monitor.matching.embedders import SentenceTransformerEmbedder
    from monitor.matching.multilingual import DualEmbedder, UseEmbedder
    from monitor.stories.cluster import clustering_view
    from monitor.stories.describe import StoryRules
    from monitor.stories.update import plan_update
    from monitor.types import StoryFacts, WindowArticle

    assert isinstance(default_embedder, SentenceTransformerEmbedder)
    dual = DualEmbedder(default_embedder, UseEmbedder())
    leads = [
        "Grain ship Aurora runs aground in the Bosphorus\nTurkey closed the strait to all traffic.",
        "Зерновоз «Аврора» сел на мель в Босфоре\nТурция закрыла пролив для всех судов.",
        "Getreidefrachter Aurora läuft im Bosporus auf Grund\nDie Türkei sperrt die Meerenge.",
        "Central bank keeps interest rates unchanged\nInflation slowed in October.",
        "Футбольный клуб выиграл кубок региона\nБолельщики праздновали до полуночи.",
        "Neues Museum für moderne Kunst eröffnet im Hafen\nDie Sammlung umfasst 400 Gemälde.",
    ]
    now = datetime.now(UTC)
    articles = [WindowArticle(article_id=i + 1, feed_id=f"o{i}", title=lead.split("\n")[0], lead=lead,
                              url=None, language=None, published=now, duplicate_of=None, in_window=True,
                              seen=False, story_id=None, unit_id=None) for i, lead in enumerate(leads)]
    view = clustering_view(dual.embed(leads, "query"), dual.model_id)
    plan = plan_update(articles, view, {}, StoryFacts(frozenset(), ()), StoryRules(), now)
    assert [sorted(s.article_ids) for s in plan.stories] == [[1, 2, 3]]
