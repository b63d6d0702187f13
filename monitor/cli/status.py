"""`monitor status`, and the /metrics and /healthz server that `monitor run` starts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from monitor.cli.support import database, log, out, settings_of, shown_url
from monitor.types import Feed, OpsFigures

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.config import Settings
    from monitor.service.http import OpsServer

PROBE_TIMEOUT = 2.0  # seconds; `status` must not hang on a port that swallows connections


@contextmanager
def ops_server(
    settings: Settings, engine: Engine, running: Callable[[], bool], feeds: Callable[[], Sequence[Feed]]
) -> Iterator[OpsServer | None]:
    """Serve /metrics and /healthz while the block runs (nothing when metrics_port = 0).

    A port that cannot be bound is logged, not fatal: the monitor's job is to watch feeds,
    and the missing endpoint shows up in Prometheus and in the container's healthcheck.
    """
    from monitor.service.http import make_server

    host, port = settings.monitor.metrics_host, settings.monitor.metrics_port
    if port == 0:
        yield None
        return
    try:
        server = make_server(engine, host, port, running, feeds).start()
    except OSError as exc:
        log.error("metrics and health server not started; set [monitor] metrics_port to a free port "
                  "(0 turns it off)", extra={"host": host, "port": port, "error": str(exc)})
        yield None
        return
    log.info("serving /metrics and /healthz", extra={"url": _url(*server.address, "/")})
    try:
        yield server
    finally:
        server.stop()


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Feeds, articles, matches, alerts and digest from the database, and whether `run` is healthy."""
    from storage.ops_repo import read_figures

    settings = settings_of(ctx)
    with database(settings) as engine:
        figures = read_figures(engine, settings.feeds())
    run = _probe(settings)
    if as_json:
        out.print_json(json.dumps(status_json(settings, figures, run)))
        return
    table = Table("figure", "value", box=None)
    for name, value in _rows(settings, figures, run):
        table.add_row(name, value)
    out.print(table)


def status_json(settings: Settings, figures: OpsFigures, run: Mapping[str, Any]) -> dict[str, Any]:
    """What `monitor status --json` prints."""
    digest = figures.last_digest
    return {
        "database": shown_url(settings),
        "feeds": dict(figures.feeds),
        "feeds_failing": figures.failing_feeds,
        "last_poll": _iso(figures.last_poll),
        "articles_stored": figures.articles,
        "matches": dict(figures.matches),
        "alerts": dict(figures.alerts),
        "digest": {
            "period": digest.period if digest else None,
            "status": digest.status if digest else None,
            "attempts": digest.attempts if digest else 0,
            "last_error": digest.last_error if digest else None,
            "last_sent": _iso(figures.last_digest_sent),
        },
        "monitor_run": dict(run),
    }


def _rows(settings: Settings, figures: OpsFigures, run: Mapping[str, Any]) -> list[tuple[str, str]]:
    digest = figures.last_digest
    last_digest = "none yet"
    if digest:
        last_digest = f"{digest.period}: {digest.status} ({digest.attempts} attempt(s))"
        last_digest += f", {digest.last_error}" if digest.status == "failed" and digest.last_error else ""
    return [
        ("database", shown_url(settings)),
        ("feeds", _breakdown(figures.feeds)),
        ("failing feeds", str(figures.failing_feeds)),
        ("last poll", _when(figures.last_poll)),
        ("articles stored", str(figures.articles)),
        ("matches", _breakdown(figures.matches)),
        ("alert outbox", _breakdown(figures.alerts)),
        ("last digest", last_digest),
        ("last digest sent", _when(figures.last_digest_sent)),
        ("monitor run", _describe_run(run)),
    ]


def _probe(settings: Settings) -> dict[str, Any]:
    """What the running monitor's /healthz says about itself (it shares the config file)."""
    host, port = settings.monitor.metrics_host, settings.monitor.metrics_port
    if port == 0:
        return {"url": None, "health": None}
    # A wildcard bind is reachable on loopback, which is where `status` runs (or `compose exec`).
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = _url(host, port, "/healthz")
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:  # 503 still carries the checks
        body = exc.read()
    except (OSError, ValueError):
        return {"url": url, "health": None}
    try:
        health = json.loads(body)
    except ValueError:
        health = None
    return {"url": url, "health": health if isinstance(health, dict) else None}


def _describe_run(run: Mapping[str, Any]) -> str:
    if run["url"] is None:
        return "unknown ([monitor] metrics_port = 0)"
    health = run["health"]
    if health is None:
        return f"not answering at {run['url']}"
    failed = [f"{name}: {check.get('error', 'failed')}" for name, check in health.get("checks", {}).items()
              if not check.get("ok")]
    return f"{health.get('status', '?')} ({run['url']})" + (f": {'; '.join(failed)}" if failed else "")


def _breakdown(counts: Mapping[str, int]) -> str:
    shown = [f"{key} {value}" for key, value in counts.items() if value]
    return ", ".join(shown) if shown else "none"


def _url(host: str, port: int, path: str) -> str:
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"
