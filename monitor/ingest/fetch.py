"""Fetching feed documents over HTTP: the one place that talks to the feeds' servers.

`Fetcher.fetch()` makes a conditional GET, follows redirects itself (to tell permanent
moves from temporary ones, and to be polite on every hop), streams the body under a
wall-clock deadline and a size cap, and turns every failure into a `FetchError`. Each
call is one `Exchange` (monitor/ingest/exchange.py); this module holds the options and the
shared client.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import httpx

from monitor import __version__
from monitor.ingest.exchange import Exchange, sendable
from monitor.ingest.politeness import HostGate
from monitor.types import FetchResult

ACCEPT = ", ".join(
    (
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
        "application/xml;q=0.9",
        "text/xml;q=0.9",
        "*/*;q=0.8",
    )
)
# Only what _Decoder undoes: it decodes by hand to bound what a small body inflates to.
ACCEPT_ENCODING = "gzip, deflate, br"



@dataclass(frozen=True)
class FetchOptions:
    """How patient and how polite the fetcher is."""

    user_agent: str = (
        f"NarrativeMonitor/{__version__} (+https://github.com/narrative-monitor/narrative-monitor)"
    )
    connect_timeout: float = 10.0
    total_timeout: float = 30.0  # wall-clock cap for the whole exchange, body and redirects
    max_body_bytes: int = 10 * 1024 * 1024  # after decoding: a small gzip can inflate to GBs
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0  # minimum gap between request starts to one host
    retry_after_cap: float = 6 * 3600
    max_redirects: int = 5


class Fetcher:
    """Fetches feed documents; one instance is meant to be shared by all poller threads."""

    def __init__(
        self,
        options: FetchOptions = FetchOptions(),  # frozen, so one shared default is safe
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = options
        self._gate = HostGate(options.per_host_concurrency, options.per_host_delay)
        self._client = httpx.Client(
            transport=transport,
            headers={
                "User-Agent": options.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            follow_redirects=False,  # Exchange follows them, hop by hop
            # The caller's thread pool bounds concurrency; the pool must not be the bottleneck.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        feed_id: str | None = None,
    ) -> FetchResult:
        """GET `url`, conditionally when validators are given; FetchError unless 2xx or 304."""
        exchange = Exchange(self._client, self._gate, self.options, url, feed_id)
        # A validator stored before it was checked (see `sendable`) must not stop the feed.
        exchange.etag, exchange.last_modified = sendable(etag), sendable(last_modified)
        return exchange.run()

    def close(self) -> None:
        """Close the connections kept alive."""
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
