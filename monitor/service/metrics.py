"""Figures only the process that did the work knows: how long embedding and matching took.

Everything the database can tell (feeds, articles, matches, outbox, digest) is read at scrape
time by `monitor.service.http` instead, so it is right whichever process did the work. These metrics
belong to no registry of their own: each /metrics server registers them into its registry.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.registry import Collector

# A pass is one scheduled matching run: from a few articles (0.1 s) to a backlog (minutes).
_PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

EMBED_SECONDS = Histogram(
    "monitor_embed_seconds", "Wall time of matching passes that embedded at least one article.",
    buckets=_PASS_BUCKETS, registry=None,
)
EMBEDDED_ARTICLES = Counter(
    "monitor_embedded_articles", "Articles embedded and matched by this process.", registry=None,
)
EMBEDDED_PASSAGES = Counter(
    "monitor_embedded_passages", "Passages embedded by this process.", registry=None,
)
PROCESS_METRICS: tuple[Collector, ...] = (EMBED_SECONDS, EMBEDDED_ARTICLES, EMBEDDED_PASSAGES)


def observe_match_run(articles: int, passages: int, seconds: float) -> None:
    """Record one matching pass; idle passes (nothing to embed) would only flatten the histogram."""
    if articles == 0:
        return
    EMBED_SECONDS.observe(seconds)
    EMBEDDED_ARTICLES.inc(articles)
    EMBEDDED_PASSAGES.inc(passages)
