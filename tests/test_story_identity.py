"""Story identity across updates: continuation, merge and split, on vectors written here.

Each update is `plan_update` over a window as storage would load it after the previous run
(what it stored: each article's story and unit), so these rules are tested without a database;
tests/test_stories.py runs them through storage on both databases.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.stories.describe import StoryRules
from monitor.stories.update import plan_update
from monitor.types import StoredStory, StoryFacts, StoryPlan, WindowArticle

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
RULES = StoryRules(similarity=0.6, min_outlets=3, min_growth=1, min_carrier_outlets=0)
FACTS = StoryFacts(frozenset(), ())


def direction(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(64).astype(np.float32)
    return vector / np.linalg.norm(vector)


def around(centre: np.ndarray, seed: int, spread: float = 0.35) -> np.ndarray:
    """A retelling: the story's direction plus its own wording."""
    vector = centre + spread * direction(1000 + seed)
    return vector / np.linalg.norm(vector)


class Window:
    """Articles and vectors as the update loads them, carried from one run to the next."""

    def __init__(self) -> None:
        self.articles: list[WindowArticle] = []
        self.vectors: list[np.ndarray] = []
        self.stored: dict[int, StoredStory] = {}
        self._next_id = 1

    def add(self, vector: np.ndarray, outlet: str) -> int:
        article_id = self._next_id
        self._next_id += 1
        self.articles.append(WindowArticle(
            article_id=article_id, feed_id=outlet, title=f"t{article_id}", lead=f"lead words {article_id}",
            url=None, language="en", published=NOW - timedelta(minutes=60 - article_id), duplicate_of=None,
            in_window=True, seen=False, story_id=None, unit_id=None))
        self.vectors.append(vector)
        return article_id

    def update(self) -> StoryPlan:
        plan = plan_update(self.articles, np.vstack(self.vectors), self.stored, FACTS, RULES, NOW)
        ids = {s.key: s.key if s.key > 0 else 100 + len(self.stored) + n for n, s in enumerate(plan.stories)}
        for state in plan.stories:
            self.stored[ids[state.key]] = StoredStory(ids[state.key], state.first_seen, state.emerging_since,
                                                      state.merged_from, state.split_from)
        for old in plan.absorbed:
            self.stored.pop(old, None)
        updated = []
        for article in self.articles:
            decided = plan.seen.get(article.article_id)
            if decided is not None:
                key, unit = decided
                article = replace(article, seen=True, story_id=ids[key] if key is not None else None,
                                  unit_id=unit)
            updated.append(article)
        self.articles = updated
        return plan

    def story_of(self, article_id: int) -> int | None:
        return next(a.story_id for a in self.articles if a.article_id == article_id)


def test_a_continued_story_keeps_its_id_and_loose_news_stays_out() -> None:
    window = Window()
    a = direction(1)
    first = [window.add(around(a, i), f"o{i}") for i in range(3)]
    noise = [window.add(direction(50 + i), f"o{i}") for i in range(5)]
    window.update()
    story = window.story_of(first[0])
    assert story is not None and {window.story_of(i) for i in first} == {story}
    assert {window.story_of(i) for i in noise} == {None}
    later = window.add(around(a, 9), "o7")
    plan = window.update()
    assert window.story_of(later) == story and [s.key for s in plan.stories] == [story]
    assert plan.stories[0].size == 4 and not plan.absorbed


def test_two_stories_joined_by_new_retellings_merge_and_record_the_absorbed_id() -> None:
    window = Window()
    a, b = direction(1), direction(2)
    # Two halves of one story, told apart at first: each half is its own story.
    left = [window.add(around(a, i), f"o{i}") for i in range(3)]
    right = [window.add(around(0.55 * a + 0.84 * b, 10 + i), f"o{3 + i}") for i in range(4)]
    window.update()
    small, large = window.story_of(left[0]), window.story_of(right[0])
    assert small is not None and large is not None and small != large
    # Retellings in between make them one story: the larger keeps its id, the smaller is absorbed.
    for i in range(6):
        window.add(around(0.85 * a + 0.53 * b, 20 + i), f"o{6 + i}")
    plan = window.update()
    assert {window.story_of(i) for i in left + right} == {large}
    assert plan.absorbed == {small: large}
    (merged,) = [s for s in plan.stories if s.key == large]
    assert small in merged.merged_from


def test_a_split_keeps_the_id_on_the_larger_part() -> None:
    window = Window()
    a = direction(1)
    b = 0.5 * a + 0.866 * direction(2)  # two related stories, each below the similarity of the other
    big = [window.add(around(a, i), f"o{i}") for i in range(5)]
    small = [window.add(around(b, 10 + i), f"o{5 + i}") for i in range(3)]
    # Articles telling both at once make them one story while they are in the window.
    links = [window.add(around(a + b, 20 + i), f"o{8 + i}") for i in range(8)]
    window.update()
    story = window.story_of(big[0])
    assert story is not None and {window.story_of(i) for i in big + small + links} == {story}
    # The same articles seen again with the bridge gone: the window moved on without them.
    window.articles = [replace(a, in_window=a.article_id not in links) for a in window.articles]
    window.articles = [replace(a, seen=False) if a.article_id == big[0] else a for a in window.articles]
    plan = window.update()
    assert {window.story_of(i) for i in big} == {story}
    part = {window.story_of(i) for i in small}
    assert len(part) == 1 and story not in part
    (split,) = [s for s in plan.stories if s.key not in (story,) and s.split_from is not None]
    assert split.split_from == story
