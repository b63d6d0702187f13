"""`/metrics` (Prometheus) and `/healthz` for a running monitor, served from a background thread.

Database figures are read at scrape time through `storage.ops_repo`, so every process that
serves them reports the same, correct numbers; only embedding times are process-local
(`monitor.service.metrics`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.service.metrics import PROCESS_METRICS
from monitor.service.serving import BackgroundServer
from monitor.types import Feed, OpsFigures
from storage.db import last_storage_failure
from storage.ops_repo import ping, read_figures

log = logging.getLogger("monitor.service.http")

Check = Callable[[], str | None]  # None when healthy, otherwise what is wrong
# How long a failed write (disk full, I/O error) keeps the `storage` check red. While the disk
# stays full every poll fails again, so the check stays red; after a fix it clears by itself.
STORAGE_FAILURE_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class Health:
    """The outcome of every health check: check name -> None (fine) or the problem."""

    checks: Mapping[str, str | None]

    @property
    def ok(self) -> bool:
        return all(problem is None for problem in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        checks = {name: {"ok": True} if problem is None else {"ok": False, "error": problem}
                  for name, problem in self.checks.items()}
        return {"status": "ok" if self.ok else "unhealthy", "checks": checks}


def check_health(checks: Mapping[str, Check]) -> Health:
    """Run every check; a check that raises counts as failed with its message."""
    results: dict[str, str | None] = {}
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure is a finding to report, not a crash of the server
            results[name] = _first_line(exc)
    return Health(results)


def database_check(engine: Engine) -> Check:
    def check() -> str | None:
        ping(engine)
        return None
    return check


def storage_check(engine: Engine, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Check:
    """Red while this process's writes recently failed for the storage's sake (disk full, I/O).

    The database check cannot see it: a full disk still answers `SELECT 1`, and the feeds
    cannot record the failure they meet.
    """
    def check() -> str | None:
        failure = last_storage_failure(engine)
        if failure is None or clock() - failure.at > STORAGE_FAILURE_WINDOW:
            return None
        return f"writes failing: {failure.error} (last at {failure.at:%Y-%m-%d %H:%M:%S}Z)"
    return check


def scheduler_check(running: Callable[[], bool]) -> Check:
    return lambda: None if running() else "not running"


class FiguresCollector(Collector):
    """Reads the database's figures and the health checks at each scrape."""

    def __init__(self, figures: Callable[[], OpsFigures], health: Callable[[], Health]) -> None:
        self._figures = figures
        self._health = health

    def collect(self) -> Iterator[Metric]:
        health = self._health()
        checks = GaugeMetricFamily("monitor_health_check", "1 when the health check passes.",
                                   labels=["check"])
        for name, problem in health.checks.items():
            checks.add_metric([name], 1.0 if problem is None else 0.0)
        yield checks
        try:
            figures = self._figures()
        except (SQLAlchemyError, ValueError) as exc:  # ValueError: a status this version does not know
            # The database check above already says 0; the rest cannot be known this time.
            log.warning("metrics: database figures unavailable", extra={"error": _first_line(exc)})
            return
        yield from figure_metrics(figures)


def figure_metrics(figures: OpsFigures) -> Iterator[Metric]:
    """The Prometheus families for the database's figures."""
    yield _labelled("monitor_feeds", "Feeds by status.", "status", figures.feeds)
    yield GaugeMetricFamily("monitor_feeds_failing", "Enabled feeds whose last poll failed.",
                            value=figures.failing_feeds)
    if figures.last_poll is not None:
        yield GaugeMetricFamily("monitor_last_poll_timestamp_seconds",
                                "When a feed was last polled (any feed, any outcome).",
                                value=figures.last_poll.timestamp())
    yield GaugeMetricFamily("monitor_articles_stored", "Articles in the database.", value=figures.articles)
    yield _labelled("monitor_matches", "Stored matches by tier.", "tier", figures.matches)
    yield _labelled("monitor_alerts", "Alert outbox messages by status.", "status", figures.alerts)
    if figures.last_digest is not None:
        digest = figures.last_digest
        yield InfoMetricFamily("monitor_digest_last", "The latest digest period attempted and its status.",
                               value={"period": digest.period, "status": digest.status})
        yield GaugeMetricFamily("monitor_digest_last_attempts", "Send attempts for the latest period.",
                                value=digest.attempts)
    if figures.last_digest_sent is not None:
        yield GaugeMetricFamily("monitor_digest_last_sent_timestamp_seconds",
                                "When a digest was last sent.", value=figures.last_digest_sent.timestamp())


def _labelled(name: str, documentation: str, label: str, values: Mapping[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], float(value))
    return family


def build_registry(figures: Callable[[], OpsFigures], health: Callable[[], Health]) -> CollectorRegistry:
    """A registry of its own per server, so several servers (tests) never clash."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(figures, health))
    for metric in PROCESS_METRICS:
        registry.register(metric)
    ProcessCollector(registry=registry)
    return registry


def make_server(
    engine: Engine, host: str, port: int, running: Callable[[], bool], feeds: Callable[[], Sequence[Feed]]
) -> OpsServer:
    """The server for one database: health checks, database figures, this process's metrics.

    `feeds` gives the current configuration (it can be re-read while running), which decides
    which feeds count as disabled or removed. Binding errors (OSError) reach the caller.
    """
    checks = {"database": database_check(engine), "storage": storage_check(engine),
              "scheduler": scheduler_check(running)}

    def health() -> Health:
        return check_health(checks)

    registry = build_registry(lambda: read_figures(engine, feeds()), health)
    return OpsServer(host, port, registry, health)


class OpsServer(BackgroundServer):
    """A small threaded HTTP server for /metrics and /healthz; start() and stop() it."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 health: Callable[[], Health]) -> None:
        super().__init__(host, port, _handler(registry, health), "ops-http")


def _handler(registry: CollectorRegistry, health: Callable[[], Health]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                result = health()
                body = json.dumps(result.as_json()).encode()
                self._send(200 if result.ok else 503, "application/json", body)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # A scrape every 15 s and a healthcheck every 30 s would drown the useful log lines.
            pass

    return Handler


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
