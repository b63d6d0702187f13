"""One article's whole path, top to bottom, in the order it happens.

    poll        ingest.poller.Pipeline.poll_many: conditional GET -> decode -> parse -> de-duplicate
                -> store the articles and the feed's new state in one transaction
    match       matching.stage.MatchStage.run_pending: cut stored articles into passages -> embed
                -> score against every narrative -> tiers -> plan alerts (alerts.planner) ->
                store matches with their alert intents in one transaction
    stories     stories.update.StoryUpdater.run: the window's leads -> copies collapsed ->
                clustered -> stories with stable ids, labels, emerging -> Slack posts in the outbox
    deliver     service.delivery.Deliverer: the outbox to Slack, each message once
    digest      service.digest_job.DigestService: yesterday's matches by email, once a day
    prune       service.retention.prune_now: old texts, matches and vectors go ([storage] retention)

`monitor poll --once` runs `poll_once`; `monitor run` schedules `poll_feed` per feed and
`match`, `stories`, `deliver`, `digest` and `prune` as periodic jobs; Celery workers run
`poll_feed`, `match` and `stories` as tasks. Each step is safe to run twice, so any of them may be
retried or run by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.types import Feed, PollResult, PruneCounts
from storage.repo import Repository

if TYPE_CHECKING:  # heavy imports (torch, matplotlib, slack-sdk) wait until a step needs them
    from alerts.slack import SlackSender
    from monitor.ingest.poller import Pipeline
    from monitor.matching.stage import MatchRun, MatchStage
    from monitor.service.delivery import Deliverer, DeliveryRun
    from monitor.service.digest_job import DigestService
    from monitor.stories.update import StoryRun, StoryUpdater

TOKEN_ENV = "SLACK_BOT_TOKEN"
WEBHOOK_ENV = "SLACK_WEBHOOK_URL"


@dataclass(frozen=True)
class OnceResult:
    """What `poll_once` did: every feed polled, the matching pass, the alerts delivered."""

    polls: list[PollResult]
    matched: MatchRun
    delivered: DeliveryRun
    stories: StoryRun | None = None  # None when [stories] enabled = false


@dataclass
class Flow:
    """The pipeline's steps over one database; parts are built on first use."""

    settings: Settings
    engine: Engine
    sync_feeds: bool = True  # workers poll the feeds the scheduler sends; it keeps the table in sync
    _pipeline: Pipeline | None = field(default=None, init=False)
    _stage: MatchStage | None = field(default=None, init=False)
    _updater: StoryUpdater | None = field(default=None, init=False)

    @property
    def pipeline(self) -> Pipeline:
        """Fetch, parse and store: the first half of the path."""
        if self._pipeline is None:
            self._pipeline = make_pipeline(self.settings, self.engine, sync=self.sync_feeds)
        return self._pipeline

    @property
    def stage(self) -> MatchStage:
        """Embed, score and plan alerts: the second half."""
        if self._stage is None:
            from monitor.matching.stage import build_stage

            self._stage = build_stage(self.settings, self.engine)
        return self._stage

    def poll_feed(self, feed: Feed) -> PollResult:
        """Step 1 for one feed (a scheduled job or a Celery task)."""
        return self.pipeline.poll_feed(feed)

    def poll(
        self, feeds: Sequence[Feed], on_result: Callable[[PollResult], None] | None = None
    ) -> list[PollResult]:
        """Step 1 for many feeds at once, `max_concurrency` at a time."""
        return self.pipeline.poll_many(feeds, self.settings.monitor.max_concurrency, on_result=on_result)

    def match(self) -> MatchRun:
        """Step 2: every stored article not matched yet; alert intents are written with the matches."""
        return self.stage.run_pending()

    def stories(self) -> StoryRun | None:
        """Step 2b: the window's articles into stories; emerging ones queue a Slack post."""
        if not self.settings.file.stories.enabled:
            return None
        if self._updater is None:
            from monitor.stories.update import build_updater

            self._updater = build_updater(self.settings, self.engine)
        return self._updater.run()

    def deliver(self, timeout: float | None = None) -> DeliveryRun:
        """Step 3: send what is pending in the outbox now (waiting out Slack's pacing)."""
        deliverer = make_deliverer(self.settings, self.engine)
        return deliverer.flush() if timeout is None else deliverer.flush(timeout)

    def prune(self) -> PruneCounts:
        """Step 5: delete what retention lets go (`monitor storage prune`)."""
        from monitor.service.retention import prune_now

        return prune_now(self.settings, self.engine)

    def poll_once(
        self, feeds: Sequence[Feed], on_result: Callable[[PollResult], None] | None = None
    ) -> OnceResult:
        """Steps 1-3 once, as `monitor poll --once` runs them; the digest keeps its own schedule."""
        stage = self.stage  # the model loads before polling, so a broken model fails fast
        try:
            polls = self.poll(feeds, on_result)
        finally:
            self.close()
        matched = stage.run_pending()
        stories = self.stories()  # after matching: the leads it embedded are what stories compare
        return OnceResult(polls, matched, self.deliver(), stories)

    def close(self) -> None:
        """Close the HTTP connections; the database engine belongs to the caller."""
        if self._pipeline is not None:
            self._pipeline.fetcher.close()


def make_pipeline(settings: Settings, engine: Engine, *, sync: bool = True) -> Pipeline:
    """Polling over the configured feeds (with `sync`, written to the feeds table first)."""
    from monitor.ingest.fetch import Fetcher
    from monitor.ingest.poller import Pipeline

    repo = Repository(engine)
    if sync:
        repo.sync_feeds(settings.feeds())
    return Pipeline(repo, Fetcher(settings.fetch_options()), max_backoff=settings.monitor.max_backoff,
                    max_items=settings.monitor.max_items_per_poll)


def make_sender(settings: Settings) -> SlackSender:
    """The bot token wins, then the webhook; without either, alerts go to the log."""
    from alerts.slack import BotSender, ConsoleSender, WebhookSender

    token, webhook = os.environ.get(TOKEN_ENV), os.environ.get(WEBHOOK_ENV)
    if token:
        return BotSender(token, settings.file.alerts.slack.api_url)
    if webhook:
        return WebhookSender(webhook)
    return ConsoleSender()


def make_deliverer(settings: Settings, engine: Engine) -> Deliverer:
    """Step 3's worker: the outbox, the configured Slack connection and the flood window."""
    from monitor.service.delivery import Deliverer
    from storage.outbox import Outbox

    return Deliverer(Outbox(engine), make_sender(settings), flood_window=settings.file.alerts.flood_window)


def make_digest_service(settings: Settings, engine: Engine) -> DigestService:
    """Step 4: the digest of a day, built from the stored matches and sent (or written) once."""
    from monitor.service.digest_job import DigestService, make_mail_sender
    from storage.digest_repo import DigestStore

    return DigestService(DigestStore(engine), make_mail_sender(settings), settings.file.digest)
