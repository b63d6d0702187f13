"""One story update: the window in, stories out, with their ids kept across runs.

    load        storage.stories_repo: articles of the window with their lead vectors, older
                members of live stories, what the last run decided for each
    collapse    identity.collapse_copies: copies (same text, near-identical lead) -> one source
    cluster     identity.dirty_units + regroup: only what new articles touch, clustered again
    describe    describe.describe: label, terms, outlets, growth, nearest narrative, emerging
    write       the same transaction: stories, members, hourly history, Slack posts (outbox)

`monitor stories update` runs it once; `monitor run` every `[stories] interval`; `poll --once`
after matching; in celery mode a worker on queue `embed` runs it after each match pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from alerts.outbox_rules import story_entries
from monitor.config import Settings
from monitor.stories.cluster import Vectors, clustering_view, neighbours
from monitor.stories.describe import StoryRules, describe, distinctive_terms, group_members
from monitor.stories.identity import collapse_copies, dirty_units, fresh, regroup, story_of
from monitor.types import Clock, StoredStory, StoryFacts, StoryPlan, WindowArticle, utc_now
from storage.stories_repo import StoryStore

log = logging.getLogger("monitor.stories")


@dataclass(frozen=True)
class StoryRun:
    """What one update did."""

    articles: int = 0  # articles in the window (and older members of live stories)
    new: int = 0  # articles seen for the first time
    stories: int = 0  # live stories after the update
    created: int = 0
    merged: int = 0
    emerging: int = 0
    posted: int = 0
    seconds: float = 0.0


def plan_update(
    articles: Sequence[WindowArticle], vectors: Vectors, stored: Mapping[int, StoredStory],
    facts: StoryFacts, rules: StoryRules, now: datetime,
) -> StoryPlan:
    """What an update writes, from the loaded window (vectors already in the clustering view)."""
    new = fresh(articles)
    # One search of the new articles against the whole window serves both thresholds: it is
    # the one part of a run that grows with the window (new x all, not all x all).
    pairs = neighbours(vectors[new], vectors, min(rules.similarity, rules.near_duplicate))
    unit = collapse_copies(articles, new, pairs, rules.near_duplicate)
    dirty, edges = dirty_units(articles, vectors, unit, new, pairs, rules.similarity)
    grouping = regroup(articles, vectors, unit, dirty, edges, rules.similarity, rules.min_outlets)
    keys = {i: story_of(grouping, articles, i) for i in range(len(articles))}
    members = group_members(keys, unit)
    texts = {m.key: [articles[u].lead for u in m.units] for m in members}
    background = [a.lead for i, a in enumerate(articles) if a.in_window and keys[i] is None and unit[i] == i]
    terms = distinctive_terms(texts, background)
    states = []
    for m in members:
        state = describe(m, articles, vectors, terms.get(m.key, ()), stored.get(m.key), facts, rules, now)
        absorbed = tuple(sorted(old for old, into in grouping.absorbed.items() if into == m.key))
        states.append(replace(state, merged_from=tuple(dict.fromkeys(state.merged_from + absorbed)),
                              split_from=grouping.split_from.get(m.key, state.split_from)))
    seen = {}
    for i, a in enumerate(articles):
        decided = (keys[i], articles[unit[i]].article_id)
        if not a.seen or (a.story_id, a.unit_id) != decided:
            seen[a.article_id] = decided
    live = {s.key for s in states}
    posts = tuple(s.key for s in states
                  if s.emerging and (s.key < 0 or stored[s.key].emerging_since is None))
    ended = tuple(sorted(k for k in stored if k not in live and k not in grouping.absorbed))
    return StoryPlan(tuple(states), seen, dict(grouping.absorbed), ended, posts)


class StoryUpdater:
    """Runs updates over one database with the configured rules."""

    def __init__(
        self, store: StoryStore, rules: StoryRules, model_id: str, *, window: timedelta, carrier_days: int,
        carrier_min_matches: int, channel: str | None, clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.rules = rules
        self.model_id = model_id
        self.window = window
        self.carrier_days = carrier_days
        self.carrier_min_matches = carrier_min_matches
        self.channel = channel
        self._clock = clock

    def run(self) -> StoryRun:
        """Cluster the window now, keep ids, write the stories and any Slack posts."""
        started = time.perf_counter()
        now = self._clock()
        counted: dict[str, int] = {}

        def compute(articles: list[WindowArticle], vectors: Vectors, stored: dict[int, StoredStory],
                    facts: StoryFacts) -> StoryPlan:
            counted.update(articles=len(articles), new=sum(1 for a in articles if not a.seen))
            view = clustering_view(vectors, self.model_id) if len(articles) else vectors
            return plan_update(articles, view, stored, facts, self.rules, now)

        channel = self.channel
        carriers = (now - timedelta(days=self.carrier_days), self.carrier_min_matches)
        plan, _ids = self.store.update(self.model_id, now - self.window, carriers, compute,
                                       lambda ids, at: story_entries(ids, channel, at) if channel else [])
        run = StoryRun(
            articles=counted.get("articles", 0), new=counted.get("new", 0), stories=len(plan.stories),
            created=sum(1 for s in plan.stories if s.key < 0), merged=len(plan.absorbed),
            emerging=sum(1 for s in plan.stories if s.emerging), posted=len(plan.posts) if channel else 0,
            seconds=time.perf_counter() - started)
        log.info("stories updated", extra={"articles": run.articles, "new": run.new, "stories": run.stories,
                                           "new_stories": run.created, "merged": run.merged,
                                           "emerging": run.emerging, "seconds": round(run.seconds, 2)})
        return run


def build_updater(settings: Settings, engine: Engine) -> StoryUpdater:
    """The configured update over a database, reading the vectors of the configured model."""
    section = settings.file.stories
    rules = StoryRules(
        similarity=section.similarity, near_duplicate=settings.file.alerts.near_duplicate,
        min_outlets=section.min_outlets, growth_window=timedelta(seconds=section.growth_window),
        min_growth=section.min_growth, min_carrier_outlets=section.min_carrier_outlets,
        carrier_tags=frozenset(section.carrier_tags), feed_tags={f.id: f.tags for f in settings.feeds()},
    )
    return StoryUpdater(
        StoryStore(engine), rules, configured_model_id(settings), window=timedelta(seconds=section.window),
        carrier_days=section.carrier_days, carrier_min_matches=section.carrier_min_matches,
        channel=section.slack_channel or None)


def configured_model_id(settings: Settings) -> str:
    """The id the matching stage stores vectors under; no model loads, except with the int8
    backend, whose id depends on whether the export loads (torch's id when it falls back)."""
    from monitor.matching.stage import configured_embedder

    return configured_embedder(settings).model_id
