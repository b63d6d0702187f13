"""Which alerts a batch of new matches deserves: routing, and one alert per story."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from monitor.config import AlertsSection
from monitor.types import AlertIntent, AlertKind, Feed, Match, Tier
from storage.clock import utc_now
from storage.outbox import Outbox


@dataclass(frozen=True)
class Router:
    """Channels for an alert: every route that names the feed, a feed tag or a narrative tag."""

    default: str
    routes: tuple[tuple[str, frozenset[str], frozenset[str], frozenset[str]], ...] = ()

    @classmethod
    def from_settings(cls, section: AlertsSection) -> Router:
        routes = tuple(
            (r.channel, frozenset(r.feed_ids), frozenset(r.feed_tags), frozenset(r.narrative_tags))
            for r in section.slack.routes
        )
        return cls(section.slack.channel, routes)

    def channels(self, feed: Feed | None, narrative_tags: Sequence[str]) -> list[str]:
        """The routed channels, in configuration order; the default channel when none applies."""
        feed_id, feed_tags = (feed.id, set(feed.tags)) if feed else ("", set())
        chosen = [
            channel for channel, ids, tags, n_tags in self.routes
            if feed_id in ids or feed_tags & tags or set(narrative_tags) & n_tags
        ]
        return list(dict.fromkeys(chosen)) or [self.default]


@dataclass
class AlertPlanner:
    """Turns new alert-tier matches into outbox intents: an alert, or a reply to the same story."""

    outbox: Outbox
    router: Router
    feeds: Callable[[], Mapping[str, Feed]]  # the current configuration's feeds by id
    narrative_tags: Callable[[str], Sequence[str]]
    model_id: str
    near_duplicate: float = 0.95
    max_age: timedelta = timedelta(hours=48)  # older articles (a backlog, a re-embed) never alert
    clock: Callable[[], datetime] = utc_now
    _heads: dict[str, list[tuple[str, str, int, np.ndarray]]] = field(default_factory=dict)

    def plan(
        self, matches: Sequence[Match], leads: Mapping[int, np.ndarray]
    ) -> dict[tuple[int, str], list[AlertIntent]]:
        """Intents per (article, narrative); `leads` holds each article's first-passage vector."""
        self._heads = {}
        feeds = self.feeds()
        origins = self.outbox.origins(sorted({m.article_id for m in matches}))
        oldest = self.clock() - self.max_age
        plans: dict[tuple[int, str], list[AlertIntent]] = {}
        for match in sorted(matches, key=lambda m: m.article_id):
            feed_id, published = origins[match.article_id]
            if match.tier is Tier.ALERT and published >= oldest:
                key = (match.article_id, match.narrative_id)
                plans[key] = self._intents(match, feeds.get(feed_id), leads)
        return plans

    def _intents(self, match: Match, feed: Feed | None, leads: Mapping[int, np.ndarray]) -> list[AlertIntent]:
        lead = leads[match.article_id]
        heads = self._recent(match.narrative_id)
        same_story = [
            h for h in heads if h[2] != match.article_id and float(h[3] @ lead) >= self.near_duplicate
        ]
        if same_story:
            return [
                AlertIntent(AlertKind.REPLY, channel, match.article_id, match.narrative_id,
                            parent_key=key, feed_id=feed.id if feed else None)
                for key, channel, _article, _vector in same_story
            ]
        channels = self.router.channels(feed, self.narrative_tags(match.narrative_id))
        intents = [AlertIntent(AlertKind.ALERT, c, match.article_id, match.narrative_id) for c in channels]
        # Later articles of this batch compare against these alerts too, not only stored ones.
        heads += [(i.key, i.channel, match.article_id, lead) for i in intents]
        return intents

    def _recent(self, narrative_id: str) -> list[tuple[str, str, int, np.ndarray]]:
        if narrative_id not in self._heads:
            self._heads[narrative_id] = [
                (key, channel, article_id, np.frombuffer(vector, dtype="<f4").astype(np.float32))
                for key, channel, article_id, vector in self.outbox.recent_alert_heads(
                    narrative_id, self.model_id
                )
            ]
        return self._heads[narrative_id]
