"""What a digest says: the period's narratives with counts, changes, NEW badges and the week's chart.

Built from plain rows (one `MatchedArticle` per match) that storage reads; every choice of
what counts, what is new and what is compared with what is made here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from alerts.text import one_line
from monitor.types import (
    Digest,
    DigestArticle,
    DigestNarrative,
    DigestStory,
    FailingFeed,
    LabelTally,
    MatchedArticle,
    Story,
    Tier,
)

CHART_DAYS = 7


@dataclass(frozen=True)
class Period:
    """A digest's day: its key, start and end (aware), and the chart's days before it."""

    key: str  # "YYYY-MM-DD"
    start: datetime
    end: datetime
    timezone: str
    days: tuple[tuple[str, datetime, datetime], ...]  # CHART_DAYS days ending with this one


class DigestSource(Protocol):
    """The reads a digest needs."""

    def matched(self, start: datetime, end: datetime) -> list[MatchedArticle]:
        """Every match of an article published in [start, end)."""
        ...

    def matched_before(self, moment: datetime, narrative_ids: Collection[str]) -> set[str]:
        """Those of the narratives matched by an article published before `moment`."""
        ...

    def failing_feeds(self) -> tuple[FailingFeed, ...]:
        """Feeds whose last poll failed, most errors first."""
        ...

    def label_tallies(self, start: datetime, end: datetime) -> list[LabelTally]:
        """Analysts' current labels given in [start, end), per narrative."""
        ...

    def emerged_stories(self, start: datetime, end: datetime) -> list[Story]:
        """Stories that became emerging before `end` and were told on or after `start`."""
        ...


def period_of(day: date, timezone: str) -> Period:
    """The local calendar day `day` in `timezone`, with the chart's days ending with it."""
    zone = ZoneInfo(timezone)

    def bounds(d: date) -> tuple[str, datetime, datetime]:
        start = datetime.combine(d, time(0), zone)
        return d.isoformat(), start, datetime.combine(d + timedelta(days=1), time(0), zone)

    days = tuple(bounds(day - timedelta(days=n)) for n in reversed(range(CHART_DAYS)))
    key, start, end = days[-1]
    return Period(key=key, start=start, end=end, timezone=timezone, days=days)


def reads_from(day: date, timezone: str) -> datetime:
    """The earliest publication time the digest of `day` reads (its chart's week before it)."""
    return period_of(day, timezone).start - timedelta(days=CHART_DAYS)


def build_digest(source: DigestSource, period: Period, top: int = 5) -> Digest:
    """The digest of one period, from the stored matches."""
    week_start = period.start - timedelta(days=CHART_DAYS)
    seen = source.matched(min(week_start, period.days[0][1]), period.end)
    by_narrative: dict[str, list[MatchedArticle]] = defaultdict(list)
    for s in seen:
        if period.start <= s.published < period.end:
            by_narrative[s.narrative_id].append(s)
    # NEW: never matched before the period, in the chart's week or any time before it.
    earlier = {s.narrative_id for s in seen if s.published < period.start}
    earlier |= source.matched_before(week_start, set(by_narrative) - earlier)
    # Labels of the week ending with the period: a day holds too few to measure precision by.
    tallies = {t.narrative_id: t for t in source.label_tallies(period.end - timedelta(days=CHART_DAYS),
                                                                 period.end)}
    narratives = [_with_labels(_narrative(items, seen, period, nid not in earlier, top), tallies.get(nid))
                  for nid, items in by_narrative.items()]
    narratives.sort(key=lambda n: (-n.articles, -n.alerts, n.title))
    return Digest(
        start=period.start, end=period.end, timezone=period.timezone, narratives=tuple(narratives),
        failing_feeds=source.failing_feeds(), days=tuple(day for day, _s, _e in period.days),
        daily=_daily(seen, period), confirmed_week=sum(t.confirmed for t in tallies.values()),
        false_alarms_week=sum(t.false_alarms for t in tallies.values()),
        stories=tuple(_story(s) for s in source.emerged_stories(period.start, period.end)),
    )


def _with_labels(narrative: DigestNarrative, tally: LabelTally | None) -> DigestNarrative:
    if tally is None:
        return narrative
    return replace(narrative, confirmed_week=tally.confirmed, false_alarms_week=tally.false_alarms)


def _story(s: Story) -> DigestStory:
    return DigestStory(story_id=s.id, label=s.label, url=s.urls[0] if s.urls else None, size=s.size,
                       outlets=s.outlets, growth=s.growth, languages=s.languages, narrative_id=s.narrative_id,
                       still_emerging=s.emerging)


def _narrative(
    items: Sequence[MatchedArticle], seen: Sequence[MatchedArticle], period: Period, first_seen: bool,
    top: int,
) -> DigestNarrative:
    first = items[0]
    day_before = period.start - timedelta(days=1)
    week_start = period.start - timedelta(days=CHART_DAYS)
    mine = [s for s in seen if s.narrative_id == first.narrative_id]
    before = {s.article_id for s in mine if day_before <= s.published < period.start}
    week = {s.article_id for s in mine if week_start <= s.published < period.start}
    best = sorted(items, key=lambda s: -s.score)[:top]
    return DigestNarrative(
        narrative_id=first.narrative_id, title=first.narrative_title, url=first.narrative_url,
        articles=len({s.article_id for s in items}), outlets=len({s.feed_id for s in items}),
        alerts=sum(1 for s in items if s.tier is Tier.ALERT),
        previous_day=len(before), week_average=round(len(week) / CHART_DAYS, 2),
        first_seen=first_seen, top=tuple(_article(s) for s in best),
    )


def _article(s: MatchedArticle) -> DigestArticle:
    return DigestArticle(title=s.title, url=s.url, outlet=s.outlet, published=s.published,
                         score=s.score, tier=s.tier, evidence=s.evidence)


def _daily(seen: Sequence[MatchedArticle], period: Period) -> dict[str, tuple[int, ...]]:
    """Articles matched per narrative on each of the chart's days, by narrative title (as shown)."""
    titles = {s.narrative_id: one_line(s.narrative_title) for s in seen}
    per_day: dict[str, Counter[int]] = defaultdict(Counter)
    for index, (_day, start, end) in enumerate(period.days):
        for s in {(s.narrative_id, s.article_id): s for s in seen if start <= s.published < end}.values():
            per_day[s.narrative_id][index] += 1
    return {titles[nid]: tuple(counts[i] for i in range(len(period.days))) for nid, counts in per_day.items()}
