"""Which alerts a batch of new matches deserves: routing, and one alert per story."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from alerts.outbox_rules import SYNDICATION_WINDOW
from monitor.types import AlertHead, AlertIntent, AlertKind, ArticleOrigin, Clock, Feed, Match, Tier, utc_now

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class AlertHistory(Protocol):
    """What the planner reads of stored articles and alerts (storage.outbox.Outbox)."""

    def origins(self, article_ids: Sequence[int]) -> dict[int, ArticleOrigin]:
        """The feed each article was first stored from, and when it was published."""
        ...

    def recent_alert_heads(self, narrative_id: str, model_id: str, since: datetime) -> list[AlertHead]:
        """The narrative's alerts created at or after `since`, with their first-passage vectors."""
        ...

    def false_alarm_heads(self, narrative_id: str, model_id: str) -> list[AlertHead]:
        """The narrative's alerts labelled false alarms now, with their first-passage vectors."""
        ...


@dataclass(frozen=True)
class Route:
    """Send to `channel` the alerts of these feeds, feed tags or narrative tags."""

    channel: str
    feed_ids: frozenset[str] = frozenset()
    feed_tags: frozenset[str] = frozenset()
    narrative_tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Router:
    """Channels for an alert: every route that names the feed, a feed tag or a narrative tag."""

    default: str
    routes: tuple[Route, ...] = ()

    def channels(self, feed: Feed | None, narrative_tags: Sequence[str]) -> list[str]:
        """The routed channels, in configuration order; the default channel when none applies."""
        feed_id, feed_tags = (feed.id, set(feed.tags)) if feed else ("", set())
        chosen = [
            r.channel for r in self.routes
            if feed_id in r.feed_ids or feed_tags & r.feed_tags or set(narrative_tags) & r.narrative_tags
        ]
        return list(dict.fromkeys(chosen)) or [self.default]


@dataclass
class AlertPlanner:
    """Turns new alert-tier matches into outbox intents: an alert, or a reply to the same story."""

    history: AlertHistory
    router: Router
    feeds: Callable[[], Mapping[str, Feed]]  # the current configuration's feeds by id
    narrative_tags: Callable[[str], Sequence[str]]
    model_id: str
    near_duplicate: float = 0.95
    max_age: timedelta = timedelta(hours=48)  # older articles (a backlog, a re-embed) never alert
    clock: Clock = utc_now
    story_window: timedelta = SYNDICATION_WINDOW  # alerts this recent are the same story's
    _heads: dict[str, list[AlertHead]] = field(default_factory=dict)
    _false: dict[str, list[AlertHead]] = field(default_factory=dict)

    def plan(
        self, matches: Sequence[Match], leads: Mapping[int, NDArray[np.float32]]
    ) -> dict[tuple[int, str], list[AlertIntent]]:
        """Intents per (article, narrative); `leads` holds each article's first-passage vector."""
        self._heads, self._false = {}, {}
        feeds = self.feeds()
        origins = self.history.origins(sorted({m.article_id for m in matches}))
        oldest = self.clock() - self.max_age
        plans: dict[tuple[int, str], list[AlertIntent]] = {}
        for match in sorted(matches, key=lambda m: m.article_id):
            origin = origins[match.article_id]
            if match.tier is Tier.ALERT and origin.published >= oldest:
                key = (match.article_id, match.narrative_id)
                plans[key] = self._intents(match, feeds.get(origin.feed_id), leads)
        return plans

    def _intents(
        self, match: Match, feed: Feed | None, leads: Mapping[int, NDArray[np.float32]]
    ) -> list[AlertIntent]:
        lead = leads[match.article_id]
        if self._like_a_false_alarm(match, lead):
            return []
        heads = self._recent(match.narrative_id)
        same_story = [
            h for h in heads
            if h.article_id != match.article_id and float(h.vector @ lead) >= self.near_duplicate
        ]
        if same_story:
            return [
                AlertIntent(AlertKind.REPLY, h.channel, match.article_id, match.narrative_id,
                            parent_key=h.key, feed_id=feed.id if feed else None)
                for h in same_story
            ]
        channels = self.router.channels(feed, self.narrative_tags(match.narrative_id))
        intents = [AlertIntent(AlertKind.ALERT, c, match.article_id, match.narrative_id) for c in channels]
        # Later articles of this batch compare against these alerts too, not only stored ones.
        heads += [AlertHead(i.key, i.channel, match.article_id, lead) for i in intents]
        return intents

    def _like_a_false_alarm(self, match: Match, lead: NDArray[np.float32]) -> bool:
        """The article, or one with its lead (at any time), is a false alarm for this narrative."""
        narrative = match.narrative_id
        if narrative not in self._false:
            self._false[narrative] = self.history.false_alarm_heads(narrative, self.model_id)
        return any(h.article_id == match.article_id or float(h.vector @ lead) >= self.near_duplicate
                   for h in self._false[narrative])

    def _recent(self, narrative_id: str) -> list[AlertHead]:
        if narrative_id not in self._heads:
            since = self.clock() - self.story_window
            self._heads[narrative_id] = self.history.recent_alert_heads(narrative_id, self.model_id, since)
        return self._heads[narrative_id]
