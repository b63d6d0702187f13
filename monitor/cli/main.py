"""The `monitor` command. Every scheduled job is also a command here."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from monitor.cli.alerts import alerts_app, describe
from monitor.cli.digest import digest_app
from monitor.cli.evaluate import eval_command
from monitor.cli.feedback import calibrate, feedback_app
from monitor.cli.matching import match, matches, narratives_app, reembed
from monitor.cli.serve import serve, slack_interactions
from monitor.cli.shown import json_text, plain
from monitor.cli.status import ops_server, status
from monitor.cli.storage import storage_app
from monitor.cli.stories import describe_run, promote, stories_app
from monitor.cli.support import Context, database, err, on_signals, out, settings_of, shown_url
from monitor.cli.worker import dispatcher, worker
from monitor.errors import ConfigError, MonitorError
from monitor.service.logs import setup_logging
from monitor.types import FeedReport, FeedStatus, PollResult

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

    from monitor.flow import Flow
    from monitor.matching.stage import MatchRun

app = typer.Typer(help="Narrative Monitor: watch news feeds for known disinformation narratives.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
feeds_app = typer.Typer(help="List and add feeds.", no_args_is_help=True)
config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(narratives_app, name="narratives")
app.add_typer(alerts_app, name="alerts")
app.add_typer(digest_app, name="digest")
app.add_typer(feedback_app, name="feedback")
app.add_typer(stories_app, name="stories")
narratives_app.command("promote")(promote)
app.add_typer(storage_app, name="storage")
app.command()(match)
app.command()(reembed)
app.command()(matches)
app.command("eval")(eval_command)
app.command()(worker)
app.command("status")(status)
app.command()(serve)
app.command()(calibrate)

DIGEST_RETRY = 300.0  # seconds between retries of a digest that is due but not sent

class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help="Config file (default ./feeds.toml or $MONITOR_CONFIG).")] = None,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="Log JSON lines.")] = False,
    log_level: Annotated[LogLevel | None, typer.Option(
        "--log-level", help="Default from [monitor] log_level.")] = None,
) -> None:
    """Options shared by every command."""
    level = log_level.value if log_level else None
    setup_logging(level or "info", json_logs)
    ctx.obj = Context(config=config, log_level=level)


@app.command()
def run(ctx: typer.Context) -> None:
    """Poll every enabled feed on its schedule until interrupted (SIGINT/SIGTERM)."""
    from monitor.config import load_settings
    from monitor.flow import Flow
    from monitor.service.scheduler import FeedScheduler

    settings = settings_of(ctx)
    with database(settings) as engine:
        flow = Flow(settings, engine)
        pipeline = flow.pipeline
        remote = dispatcher(settings, pipeline.repo)  # celery engine: workers poll and match
        periodic = _periodic_jobs(flow, remote.enqueue_match if remote else None,
                                  remote.enqueue_stories if remote else None)
        scheduler = FeedScheduler(settings, pipeline, load=load_settings, periodic=periodic,
                                  poll=remote.enqueue_poll if remote else None)
        stop = threading.Event()
        on_signals(stop, "finishing the polls in flight")
        with ops_server(settings, engine, lambda: scheduler.running, lambda: scheduler.settings.feeds()), \
                slack_interactions(settings, engine):
            scheduler.start()
            try:
                scheduler.run_until(stop)
            finally:
                scheduler.shutdown()
                flow.close()
                if remote:
                    remote.close()


def _periodic_jobs(
    flow: Flow, match: Callable[[], object] | None = None, stories: Callable[[], object] | None = None
) -> list[tuple[str, Callable[[], object], float | BaseTrigger]]:
    """The jobs `run` schedules besides polling: matching and stories (or enqueueing them), alert
    delivery, the digest, pruning."""
    from apscheduler.triggers.cron import CronTrigger

    from monitor.flow import make_deliverer, make_digest_service

    settings = flow.settings
    digest = make_digest_service(settings, flow.engine)
    hour, minute = settings.file.digest.time.split(":")
    at_digest_time = CronTrigger(hour=int(hour), minute=int(minute), timezone=settings.file.digest.timezone)
    match_job = match if match is not None else flow.stage.run_pending  # the model loads at start
    story_job = stories if stories is not None else flow.stories
    return [
        ("match", match_job, settings.file.matching.embed_interval),
        *([("stories", story_job, settings.file.stories.interval)] if settings.file.stories.enabled else []),
        ("deliver", make_deliverer(settings, flow.engine).deliver_due, settings.file.alerts.deliver_interval),
        ("digest", digest.catch_up, at_digest_time),
        # After a failure or downtime, yesterday's digest goes out as soon as it can.
        ("digest-retry", digest.catch_up, DIGEST_RETRY),
        ("prune", flow.prune, settings.file.storage.prune_interval),
    ]


@app.command()
def poll(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Poll every enabled feed once, then exit.")] = False,
    feed: Annotated[list[str] | None, typer.Option("--feed", help="Only this feed id (repeatable).")] = None,
) -> None:
    """Poll feeds once through the whole pipeline and print a summary."""
    from rich.progress import Progress

    from monitor.flow import Flow

    if not once:
        raise typer.BadParameter("use `monitor poll --once`, or `monitor run` to keep polling")
    settings = settings_of(ctx)
    feeds = [f for f in settings.feeds() if f.enabled or (feed and f.id in feed)]
    if feed:
        unknown = sorted(set(feed) - {f.id for f in settings.feeds()})
        if unknown:
            raise ConfigError(settings.path, [f"feeds.{i}: no such feed" for i in unknown])
        feeds = [f for f in feeds if f.id in feed]
    with database(settings) as engine, Progress(
        console=err, transient=True, disable=not err.is_terminal
    ) as progress:
        task = progress.add_task("polling", total=len(feeds))
        done = Flow(settings, engine).poll_once(feeds, on_result=lambda _r: progress.advance(task))
    _print_poll_summary(done.polls)
    _print_match_summary(done.matched)
    if done.stories is not None:
        out.print(describe_run(done.stories))
    out.print(describe(done.delivered))


def _print_poll_summary(results: list[PollResult]) -> None:
    table = Table("feed", "status", "http", "new", "updated", "dup", "error", box=None)
    for r in results:  # the error and warning may quote the server or the document
        table.add_row(plain(r.feed_id), r.status.value, str(r.http_status or "-"), str(r.new),
                      str(r.updated), str(r.duplicates), plain(r.error or r.warning))
    out.print(table)
    failed = sum(1 for r in results if r.error)
    out.print(f"Polled {len(results)} feed(s): {len(results) - failed} ok, {failed} failed; "
              f"{sum(r.new for r in results)} new article(s), "
              f"{sum(r.updated for r in results)} updated, "
              f"{sum(r.duplicates for r in results)} duplicate(s).")


def _print_match_summary(run: MatchRun) -> None:
    alerts = sum(1 for m in run.new_matches if m.tier.value == "alert")
    out.print(f"Matched {run.articles} article(s) ({run.passages} passages) in {run.seconds:.1f} s: "
              f"{len(run.new_matches)} new match(es), {alerts} at alert tier.")


@feeds_app.command("list")
def feeds_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Each feed's health: status, last success and error, next poll, article count."""
    from storage.repo import Repository

    settings = settings_of(ctx)
    with database(settings) as engine:
        repo = Repository(engine)
        repo.sync_feeds(settings.feeds())
        reports = repo.feed_reports(settings.feeds())
    if as_json:
        sys.stdout.write(json_text([_report_json(r) for r in reports], indent=2) + "\n")
        return
    table = Table("id", "status", "last success", "errors", "next poll", "articles", "url / last error")
    for r in reports:  # a redirect can set the url; the last error may quote the server
        detail = r.url if not r.last_error or r.status is FeedStatus.OK else f"{r.url}\n{r.last_error}"
        table.add_row(plain(r.id), r.status.value, _when(r.last_success), str(r.consecutive_errors),
                      _when(r.next_poll), str(r.article_count), plain(detail))
    out.print(table)


def _report_json(report: FeedReport) -> dict[str, Any]:
    data = asdict(report)
    data["status"] = report.status.value
    for key in ("last_success", "next_poll"):
        data[key] = data[key].isoformat() if data[key] else None
    return data


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@feeds_app.command("reset")
def feeds_reset(ctx: typer.Context, feed_id: Annotated[str, typer.Argument(help="Feed id.")]) -> None:
    """Forget a feed's errors, backoff and 410 state so it is polled again at once."""
    from storage.repo import Repository

    settings = settings_of(ctx)
    feed = next((f for f in settings.feeds() if f.id == feed_id), None)
    if feed is None:
        raise ConfigError(settings.path, [f"feeds.{feed_id}: no such feed"])
    with database(settings) as engine:
        Repository(engine).reset_feed(feed)
    out.print(f"Feed {feed_id} reset; it will be polled on the next run.")


@feeds_app.command("add")
def feeds_add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="A feed URL, or a web page that links to its feed.")],
    feed_id: Annotated[str | None, typer.Option(
        "--id", help="Feed id (default: from the site).")] = None,
    interval: Annotated[str | None, typer.Option(
        "--interval", help="e.g. 15m (default: poll_interval).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Display name (default: the feed's title).")] = None,
) -> None:
    """Check that URL serves a feed (or find it in the page), then add it to feeds.toml."""
    from monitor.cli.feeds_file import add_feed
    from monitor.config import parse_duration
    from monitor.ingest.discover import discover_feed
    from monitor.ingest.fetch import Fetcher

    settings = settings_of(ctx)
    if interval is not None:
        try:
            parse_duration(interval)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--interval") from exc
    with Fetcher(settings.fetch_options()) as fetcher:
        found = discover_feed(url, fetcher)
    added = add_feed(settings.path, found, feed_id=feed_id, interval=interval, name=name)
    out.print(plain(f"Added [feeds.{added}] -> {found.url}" + (f" ({found.title})" if found.title else "")))
    out.print(f"Written to {settings.path}; a running monitor picks it up within a minute.")


@config_app.command("check")
def config_check(ctx: typer.Context) -> None:
    """Validate the configuration without running anything; exit 1 on any problem."""
    from monitor.config import load_settings

    settings = load_settings(ctx.obj.config)
    feeds = settings.feeds()
    enabled = sum(1 for f in feeds if f.enabled)
    where = shown_url(settings)
    out.print(f"{settings.path}: OK ({len(feeds)} feed(s), {enabled} enabled; database {where})")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending database migrations (they also run on every start)."""
    settings = settings_of(ctx)
    with database(settings):
        pass
    out.print("Database schema is up to date.")


def main() -> None:
    """Console-script entry point: named errors become a message and exit status 1."""
    try:
        app()
    except MonitorError as exc:
        err.print(plain(f"error: {exc}"), style="red")  # it may quote a server or a file
        sys.exit(1)


if __name__ == "__main__":
    main()
