"""monitor.ingest.fetch against a real HTTP server on 127.0.0.1 (tests.feedserver); nothing mocked."""

from __future__ import annotations

import gzip
import itertools
import threading
import time
import tracemalloc
import zlib
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import brotli  # type: ignore[import-untyped]
import pytest

from monitor import __version__
from monitor.errors import FetchError
from monitor.ingest.fetch import Fetcher, FetchOptions

from feedserver import FeedServer, Request, Response

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
# No politeness gap by default, or every test with two requests would wait a second.
FAST = FetchOptions(per_host_delay=0.0, total_timeout=5.0, connect_timeout=2.0)
SLOW_SERVER = FetchOptions(per_host_delay=0.0, total_timeout=0.5, connect_timeout=0.5)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FAST) as fetcher:
        yield fetcher


def fetch_error(fetcher: Fetcher, url: str) -> FetchError:
    """The FetchError that fetching `url` raises."""
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(url, feed_id="f1")
    assert caught.value.feed_id == "f1"
    assert caught.value.url == url
    return caught.value


# Conditional GET


def test_200_returns_body_validators_and_lower_cased_headers(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    headers = {"Content-Type": "application/rss+xml", "ETag": '"v1"'}
    headers |= {"Last-Modified": LAST_MODIFIED, "Content-Location": "/canonical.xml"}
    feed_server.route("/feed.xml", Response(body=RSS, headers=headers))
    before = datetime.now(UTC)

    result = fetcher.fetch(feed_server.url("/feed.xml"))

    assert (result.status, result.body, result.not_modified) == (200, RSS, False)
    assert (result.etag, result.last_modified) == ('"v1"', LAST_MODIFIED)
    assert result.headers["content-type"] == "application/rss+xml"
    assert result.headers["content-location"] == "/canonical.xml"
    assert (result.url, result.permanent_url) == (feed_server.url("/feed.xml"), None)
    assert result.fetched_at is not None and result.fetched_at.tzinfo is not None
    assert before <= result.fetched_at <= datetime.now(UTC)


def test_conditional_get_sends_validators_and_keeps_the_304s(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    def answer(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"', "Last-Modified": LAST_MODIFIED})
        return Response(body=RSS, headers={"ETag": '"v1"', "Last-Modified": LAST_MODIFIED})

    feed_server.route("/feed.xml", answer)
    first = fetcher.fetch(feed_server.url("/feed.xml"))
    second = fetcher.fetch(
        feed_server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified
    )

    assert (second.status, second.body, second.not_modified) == (304, b"", True)
    assert (second.etag, second.last_modified) == ('"v1"', LAST_MODIFIED)
    unconditional, conditional = feed_server.requests_to("/feed.xml")
    assert "if-none-match" not in unconditional.headers
    assert "if-modified-since" not in unconditional.headers
    assert conditional.headers["if-none-match"] == '"v1"'
    assert conditional.headers["if-modified-since"] == LAST_MODIFIED


def test_304_without_validators_keeps_the_ones_sent(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.route("/feed.xml", Response(status=304))

    result = fetcher.fetch(feed_server.url("/feed.xml"), etag='"v1"', last_modified=LAST_MODIFIED)

    assert (result.status, result.etag, result.last_modified) == (304, '"v1"', LAST_MODIFIED)


def test_sends_user_agent_accept_and_accept_encoding(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.route("/feed.xml", Response(body=RSS))

    fetcher.fetch(feed_server.url("/feed.xml"))

    headers = feed_server.requests_to("/feed.xml")[0].headers
    assert headers["user-agent"].startswith(f"NarrativeMonitor/{__version__} (+https://")
    assert headers["accept"].startswith("application/rss+xml, application/atom+xml")
    assert "*/*;q=0.8" in headers["accept"]
    assert {"gzip", "deflate", "br"} <= {c.strip() for c in headers["accept-encoding"].split(",")}


# Redirects


def redirect_chain(server: FeedServer, statuses: tuple[int, ...]) -> str:
    """/r0 -> /r1 -> ... -> /feed.xml, hop i answering statuses[i]; returns the first URL."""
    paths = [f"/r{i}" for i in range(len(statuses))] + ["/feed.xml"]
    for i, status in enumerate(statuses):
        # Alternate relative and absolute Locations: both must resolve.
        location = paths[i + 1] if i % 2 == 0 else server.url(paths[i + 1])
        server.route(paths[i], Response(status=status, headers={"Location": location}))
    server.route("/feed.xml", Response(body=RSS))
    return server.url(paths[0])


@pytest.mark.parametrize(
    ("statuses", "permanent"),
    [
        ((301,), "/feed.xml"),
        ((308,), "/feed.xml"),
        ((301, 308, 301), "/feed.xml"),
        ((302,), None),
        ((307,), None),
        ((303,), None),
        ((301, 302), "/r1"),  # only the leading run of permanent hops counts
        ((302, 301), None),
    ],
)
def test_redirects_set_permanent_url_only_for_leading_301_308(
    feed_server: FeedServer,
    fetcher: Fetcher,
    statuses: tuple[int, ...],
    permanent: str | None,
) -> None:
    result = fetcher.fetch(redirect_chain(feed_server, statuses))

    assert (result.status, result.body) == (200, RSS)
    assert result.url == feed_server.url("/feed.xml")
    assert result.permanent_url == (permanent and feed_server.url(permanent))


def test_redirects_carry_the_validators(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = redirect_chain(feed_server, (301,))

    fetcher.fetch(url, etag='"v1"')

    assert feed_server.requests_to("/feed.xml")[0].headers["if-none-match"] == '"v1"'


def test_too_many_redirects(feed_server: FeedServer) -> None:
    options = FetchOptions(per_host_delay=0.0, max_redirects=2)
    with Fetcher(options) as fetcher:
        assert fetcher.fetch(redirect_chain(feed_server, (302, 302))).status == 200
        error = fetch_error(fetcher, redirect_chain(feed_server, (302, 302, 302)))

    assert error.reason == "too many redirects"


# HTTP errors


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (404, "HTTP 404 Not Found"),
        (500, "HTTP 500 Internal Server Error"),
        (403, "HTTP 403 Forbidden"),
    ],
)
def test_http_errors_raise_with_status_and_reason(
    feed_server: FeedServer, fetcher: Fetcher, status: int, reason: str
) -> None:
    feed_server.route("/feed.xml", Response(status=status, headers={"Retry-After": "60"}))

    error = fetch_error(fetcher, feed_server.url("/feed.xml"))

    assert (error.status, error.reason, error.retry_after) == (status, reason, None)


def test_unrouted_path_is_a_404(feed_server: FeedServer, fetcher: Fetcher) -> None:
    assert fetch_error(fetcher, feed_server.url("/nothing")).status == 404


def test_an_error_after_a_redirect_names_where_it_happened(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.route("/old", Response(status=301, headers={"Location": "/missing"}))

    error = fetch_error(fetcher, feed_server.url("/old"))

    assert error.reason == f"HTTP 404 Not Found (at {feed_server.url('/missing')})"


def test_410_says_gone(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.route("/feed.xml", Response(status=410))

    error = fetch_error(fetcher, feed_server.url("/feed.xml"))

    assert error.status == 410
    assert "gone" in error.reason.lower()


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("120", 120, 120),
        (120, 100, 121),  # an HTTP date 120 s ahead; whole seconds, and the clock moves on
        ("999999", 6 * 3600, 6 * 3600),  # capped
        (10 * 24 * 3600, 6 * 3600, 6 * 3600),
        ("-5", 0, 0),
        (-3600, 0, 0),
    ],
)
def test_retry_after_seconds_or_date_capped(
    feed_server: FeedServer, fetcher: Fetcher, status: int, header: str | int, low: float, high: float
) -> None:
    # Integers stand for dates, made here rather than at collection time, which may be long ago.
    value = http_date(header) if isinstance(header, int) else header
    feed_server.route("/feed.xml", Response(status=status, headers={"Retry-After": value}))

    error = fetch_error(fetcher, feed_server.url("/feed.xml"))

    assert error.status == status
    assert error.retry_after is not None and low <= error.retry_after <= high


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}])
def test_retry_after_absent_or_unreadable_is_none(
    feed_server: FeedServer, fetcher: Fetcher, headers: dict[str, str]
) -> None:
    feed_server.route("/feed.xml", Response(status=429, headers=headers))

    assert fetch_error(fetcher, feed_server.url("/feed.xml")).retry_after is None


def test_retry_after_cap_is_configurable(feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", Response(status=503, headers={"Retry-After": "3600"}))

    with Fetcher(FetchOptions(per_host_delay=0.0, retry_after_cap=60)) as fetcher:
        assert fetch_error(fetcher, feed_server.url("/feed.xml")).retry_after == 60


# Network errors and timeouts


def test_connection_refused(fetcher: Fetcher) -> None:
    with FeedServer() as server:
        url = server.url("/feed.xml")  # nothing listens on the port once it stops

    error = fetch_error(fetcher, url)

    assert (error.status, error.reason) == (None, "connection refused")


def test_unsupported_scheme(fetcher: Fetcher) -> None:
    error = fetch_error(fetcher, "ftp://127.0.0.1/feed.xml")

    assert error.status is None
    assert error.reason.startswith("invalid URL")


def test_a_stalling_server_times_out_at_the_deadline() -> None:
    began = time.monotonic()
    with FeedServer() as server, Fetcher(SLOW_SERVER) as fetcher:
        server.route("/feed.xml", Response(body=RSS, delay=10))
        error = fetch_error(fetcher, server.url("/feed.xml"))
    # Also shows that stopping the server does not wait for the handler's delay.
    assert time.monotonic() - began < 3

    assert (error.status, error.reason) == (None, "timed out after 0.5 s")


def test_a_trickling_body_times_out_at_the_deadline() -> None:
    began = time.monotonic()
    with FeedServer() as server, Fetcher(SLOW_SERVER) as fetcher:
        # 400 bytes at 100 a second: each read is quick, the whole would take 4 s.
        server.route("/feed.xml", Response(body=b"x" * 400, trickle=0.01))
        error = fetch_error(fetcher, server.url("/feed.xml"))
    assert time.monotonic() - began < 3

    assert (error.status, error.reason) == (None, "timed out after 0.5 s")


def test_a_body_without_length_is_read_to_the_end(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.route("/trickle", Response(body=RSS[:20], trickle=0.001))
    feed_server.route("/chunked", Response(body=RSS, headers={"Transfer-Encoding": "chunked"}))

    assert fetcher.fetch(feed_server.url("/trickle")).body == RSS[:20]
    assert fetcher.fetch(feed_server.url("/chunked")).body == RSS


# Body size cap and decoding

CAP = 100_000
CAPPED = FetchOptions(per_host_delay=0.0, total_timeout=5.0, max_body_bytes=CAP)
BOMB = b"\0" * (50 * CAP)  # compresses to a few kB


@pytest.mark.parametrize(
    "response",
    [
        # Announced too large: rejected on the headers, before the (missing) body arrives.
        Response(body=b"x" * 10, headers={"Content-Length": str(10**9)}),
        Response(body=b"x" * (CAP + 1), headers={"Transfer-Encoding": "chunked"}),
        Response(
            body=gzip.compress(BOMB),
            headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
        ),
        Response(body=brotli.compress(BOMB), headers={"Content-Encoding": "br"}),
        Response(body=zlib.compress(BOMB), headers={"Content-Encoding": "deflate"}),
    ],
    ids=["content-length", "chunked", "gzip-bomb", "brotli-bomb", "deflate-bomb"],
)
def test_a_body_over_the_cap_is_refused(feed_server: FeedServer, response: Response) -> None:
    feed_server.route("/feed.xml", response)

    with Fetcher(CAPPED) as fetcher:
        began = time.monotonic()
        error = fetch_error(fetcher, feed_server.url("/feed.xml"))
        assert time.monotonic() - began < 2

    assert (error.status, error.reason) == (200, f"body larger than {CAP} bytes")


def test_a_bomb_is_not_inflated_into_memory(feed_server: FeedServer) -> None:
    bomb = brotli.compress(b"\0" * (200 * 2**20), quality=5)  # 200 MB in a few hundred bytes
    feed_server.route("/feed.xml", Response(body=bomb, headers={"Content-Encoding": "br"}))

    with Fetcher(CAPPED) as fetcher:
        tracemalloc.start()
        try:
            fetch_error(fetcher, feed_server.url("/feed.xml"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak < 10 * 2**20


def test_a_body_at_the_cap_is_accepted(feed_server: FeedServer) -> None:
    feed_server.route(
        "/feed.xml", Response(body=gzip.compress(b"x" * CAP), headers={"Content-Encoding": "gzip"})
    )

    with Fetcher(CAPPED) as fetcher:
        assert fetcher.fetch(feed_server.url("/feed.xml")).body == b"x" * CAP


DOCUMENT = RSS * 200


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "body", "trickle"),
    [
        ("gzip", gzip.compress(DOCUMENT), 0.0),
        ("x-gzip", gzip.compress(DOCUMENT), 0.0),
        ("br", brotli.compress(DOCUMENT), 0.0),
        ("deflate", zlib.compress(DOCUMENT), 0.0),
        ("deflate", raw_deflate(DOCUMENT), 0.0),
        # One byte at a time: the zlib-or-raw sniffing must wait for two bytes.
        ("deflate", raw_deflate(DOCUMENT), 0.0005),
        ("deflate", zlib.compress(DOCUMENT), 0.0005),
        ("gzip, br", brotli.compress(gzip.compress(DOCUMENT)), 0.0),
        ("identity", DOCUMENT, 0.0),
    ],
)
def test_compressed_bodies_are_decoded(
    feed_server: FeedServer, fetcher: Fetcher, encoding: str, body: bytes, trickle: float
) -> None:
    headers = {"Content-Encoding": encoding}
    feed_server.route("/feed.xml", Response(body=body, headers=headers, trickle=trickle))

    result = fetcher.fetch(feed_server.url("/feed.xml"))

    assert result.body == DOCUMENT


def test_a_corrupt_compressed_body_is_a_fetch_error(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    body = b"\x1f\x8b" + b"not gzip at all"
    feed_server.route("/feed.xml", Response(body=body, headers={"Content-Encoding": "gzip"}))

    error = fetch_error(fetcher, feed_server.url("/feed.xml"))

    assert error.reason.startswith("could not decode gzip body")


# Per-host politeness


def test_starts_to_one_host_are_spaced_but_other_hosts_do_not_wait(
    feed_server: FeedServer,
) -> None:
    starts: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()

    def record(request: Request) -> Response:
        with lock:
            starts[request.headers["host"].rsplit(":", 1)[0]].append(time.monotonic())
        return Response(body=RSS)

    feed_server.route("/feed.xml", record)
    url = feed_server.url("/feed.xml")
    # Same server, another host name: a different host as far as politeness goes.
    urls = [url] * 3 + [url.replace("127.0.0.1", "localhost")] * 3
    options = FetchOptions(per_host_delay=0.3, per_host_concurrency=3)
    with Fetcher(options) as fetcher, ThreadPoolExecutor(len(urls)) as pool:
        began = time.monotonic()
        assert all(result.status == 200 for result in pool.map(fetcher.fetch, urls))
        elapsed = time.monotonic() - began

    for host in ("127.0.0.1", "localhost"):
        times = sorted(starts[host])
        assert len(times) == 3
        assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 0.25
    # Each host needs two gaps (0.6 s); if the hosts waited on each other, five (1.5 s).
    assert elapsed < 1.2


def test_in_flight_requests_per_host_are_capped(feed_server: FeedServer) -> None:
    in_flight, peak = 0, 0
    lock = threading.Lock()

    def slow(request: Request) -> Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.2)
        with lock:
            in_flight -= 1
        return Response(body=RSS)

    feed_server.route("/feed.xml", slow)
    options = FetchOptions(per_host_delay=0.0, per_host_concurrency=2)
    with Fetcher(options) as fetcher, ThreadPoolExecutor(5) as pool:
        list(pool.map(fetcher.fetch, [feed_server.url("/feed.xml")] * 5))

    assert peak == 2
