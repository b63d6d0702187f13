"""What a story is and does: its label, distinctive terms, outlets, growth, narrative, emerging.

Emerging = growing fast (at least `min_growth` new independent sources within
`growth_window`), told by at least `min_outlets` outlets of which `min_carrier_outlets` carry
known narratives (a feed tag in `carrier_tags`, or narrative matches in recent history), and
not an alert-tier narrative already (alerts cover those).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from monitor.stories.cluster import Vectors
from monitor.stories.identity import centroid_order
from monitor.types import MemberMatch, StoredStory, StoryFacts, StoryState, WindowArticle

TERMS = 6  # distinctive terms kept per story
_WORDS = r"(?u)\b[^\W\d_]{3,}\b"  # words of three letters or more, in any script


@dataclass(frozen=True)
class StoryRules:
    """The settings of [stories] that decide, with the feeds' tags."""

    similarity: float = 0.55
    near_duplicate: float = 0.95
    min_outlets: int = 3
    growth_window: timedelta = timedelta(hours=6)
    min_growth: int = 3
    min_carrier_outlets: int = 1
    carrier_tags: frozenset[str] = frozenset()
    feed_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Members:
    """One story's members after an update: positions in the loaded articles."""

    key: int
    rows: list[int]  # every member
    unit_of: dict[int, int]  # member -> the member standing for its copies
    units: list[int]  # the independent sources among them


def describe(
    members: Members, articles: Sequence[WindowArticle], vectors: Vectors, terms: tuple[str, ...],
    stored: StoredStory | None, facts: StoryFacts, rules: StoryRules, now: datetime,
) -> StoryState:
    """A story's state from its members."""
    units = [articles[u] for u in members.units]
    outlet_ids = sorted({a.feed_id for a in units})
    in_window = [u for u in members.units if articles[u].in_window] or members.units
    representative = articles[centroid_order(vectors, in_window)[0]]
    best = _nearest(facts.matches, {articles[i].article_id for i in members.rows})
    growth = sum(1 for a in units if a.published >= now - rules.growth_window)
    carriers = sum(1 for f in outlet_ids if f in facts.carriers or rules.carrier_tags & set(
        rules.feed_tags.get(f, ())))
    known = best is not None and best[2]
    emerging = (growth >= rules.min_growth and len(outlet_ids) >= rules.min_outlets
                and carriers >= rules.min_carrier_outlets and not known)
    since = (stored.emerging_since if stored and stored.emerging_since else now) if emerging else None
    published = [articles[i].published for i in members.rows]
    first = min([*published, *([stored.first_seen] if stored else [])])
    return StoryState(
        key=members.key, article_ids=tuple(articles[i].article_id for i in members.rows),
        unit_ids={articles[i].article_id: articles[u].article_id for i, u in members.unit_of.items()},
        label=representative.title, representative_id=representative.article_id, terms=terms,
        outlets=tuple(facts.outlet_names.get(f, f) for f in outlet_ids),
        languages=tuple(sorted({a.language for i in members.rows if (a := articles[i]).language})),
        tags=tuple(sorted({t for f in outlet_ids for t in rules.feed_tags.get(f, ())})),
        size=len(members.rows), sources=len(units), growth=growth, first_seen=first,
        last_seen=max(published), narrative_id=best[0] if best else None,
        narrative_score=round(best[1], 4) if best else None, known_alert=known,
        emerging=emerging, emerging_since=since,
        merged_from=stored.merged_from if stored else (), split_from=stored.split_from if stored else None,
    )


def _nearest(matches: Sequence[MemberMatch], article_ids: set[int]) -> tuple[str, float, bool] | None:
    """The narrative the members matched best, its best score, and whether any member alerted."""
    scores: dict[str, float] = {}
    alerted = False
    for m in matches:
        if m.article_id in article_ids:
            scores[m.narrative_id] = max(m.score, scores.get(m.narrative_id, m.score))
            alerted = alerted or m.alert
    if not scores:
        return None
    narrative = max(scores, key=lambda n: (scores[n], n))
    return narrative, scores[narrative], alerted


def distinctive_terms(
    classes: Mapping[int, Sequence[str]], background: Sequence[str]
) -> dict[int, tuple[str, ...]]:
    """Each story's terms by class-based TF-IDF over the window (every other article as one class).

    A term counts once per member and must be used by at least two members, so one outlet's
    wording is never a story's term; its weight falls with how common it is across classes.
    """
    keys = list(classes)
    if not keys:
        return {}
    from sklearn.feature_extraction.text import CountVectorizer

    documents = [text for key in keys for text in classes[key]] + list(background)
    owners = np.array([k for k, key in enumerate(keys) for _ in classes[key]] + [len(keys)] * len(background))
    vectorizer = CountVectorizer(token_pattern=_WORDS, binary=True, stop_words="english")
    try:
        counts = vectorizer.fit_transform(documents)
    except ValueError:  # no word in any text
        return {key: () for key in keys}
    per_class = np.vstack([np.asarray(counts[owners == k].sum(axis=0)).ravel() for k in range(len(keys) + 1)])
    frequency = per_class.sum(axis=0)
    average = per_class.sum() / len(per_class)
    weights = per_class[:-1] / np.maximum(per_class[:-1].sum(axis=1, keepdims=True), 1)
    weights = weights * np.log1p(average / np.maximum(frequency, 1))
    weights[per_class[:-1] < 2] = 0.0
    words = vectorizer.get_feature_names_out()
    found: dict[int, tuple[str, ...]] = {}
    for k, key in enumerate(keys):
        top = [int(j) for j in np.argsort(-weights[k], kind="stable")[:TERMS] if weights[k, j] > 0]
        found[key] = tuple(str(words[j]) for j in top)
    return found


def group_members(keys: Mapping[int, int | None], unit: Sequence[int]) -> list[Members]:
    """Members per story key from each article's key (None: in no story)."""
    rows: dict[int, list[int]] = defaultdict(list)
    for i, key in keys.items():
        if key is not None:
            rows[key].append(i)
    found = []
    for key, members in sorted(rows.items()):
        inside = set(members)
        unit_of = {i: unit[i] if unit[i] in inside else i for i in members}
        found.append(Members(key, sorted(members), unit_of, sorted(set(unit_of.values()))))
    return found
