"""One fetch on the wire: its hops, its deadline, its body, and errors that name the feed.

`Fetcher.fetch()` (monitor/ingest/fetch.py) makes an `Exchange` per call; the exchange follows
redirects itself, streams the body under the deadline and the size cap, and turns every
failure into a `FetchError` with a short reason.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

import httpx

from alerts.retry import retry_after_seconds
from monitor.errors import FetchError
from monitor.ingest.decoding import DECODE_ERRORS, BodyDecoder, BodyTooLarge
from monitor.ingest.politeness import HostGate
from monitor.types import FetchResult

if TYPE_CHECKING:
    from monitor.ingest.fetch import FetchOptions

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A validator we can send back as it came: visible ASCII and spaces, of a sane length. Anything
# else (UTF-8, control characters, a 100 KB ETag) would fail every later request before it left.
_SENDABLE = re.compile(r"[\x20-\x7e\t]{1,1024}")


class _Redirect(NamedTuple):
    status: int
    location: str  # absolute


class _Deadline:
    """The wall-clock budget of one fetch; waiting at the HostGate is not charged to it."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def extend(self, seconds: float) -> None:
        self._end += seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()


class Exchange:
    """One call to `Fetcher.fetch`: its hops, its deadline, and errors that name the feed."""

    def __init__(
        self,
        client: httpx.Client,
        gate: HostGate,
        options: FetchOptions,
        url: str,
        feed_id: str | None,
    ) -> None:
        self.client, self.gate, self.options = client, gate, options
        self.url, self.feed_id = url, feed_id
        self.deadline = _Deadline(options.total_timeout)
        self.etag: str | None = None  # the validators sent, kept on a 304 that omits them
        self.last_modified: str | None = None

    def run(self) -> FetchResult:
        """Fetch, turning every transport failure into a FetchError."""
        try:
            return self._follow()
        except httpx.TimeoutException as exc:
            raise self.error(self._timed_out(exc)) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
            raise self.error(_describe(exc)) from exc

    def error(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> FetchError:
        return FetchError(
            self.url, reason, status=status, retry_after=retry_after, feed_id=self.feed_id
        )

    def _follow(self) -> FetchResult:
        """Follow redirects; the leading run of 301/308 hops gives the permanent URL."""
        url, permanent, moved_for_good = self.url, None, True
        for _ in range(self.options.max_redirects + 1):
            outcome = self._hop(url)
            if isinstance(outcome, FetchResult):
                return replace(outcome, permanent_url=permanent)
            moved_for_good = moved_for_good and outcome.status in _PERMANENT_REDIRECTS
            if moved_for_good:
                permanent = outcome.location
            url = outcome.location
        raise self.error("too many redirects", status=outcome.status)

    def _hop(self, url: str) -> FetchResult | _Redirect:
        """One request, made when the host's gate lets it start."""
        with self.gate.slot(_host_key(url)) as waited:
            self.deadline.extend(waited)
            headers = _conditional_headers(self.etag, self.last_modified)
            timeout = self._timeout()
            with self.client.stream("GET", url, headers=headers, timeout=timeout) as response:
                return self._answer(response)

    def _timeout(self) -> httpx.Timeout:
        """Per-request timeouts that never outlast the deadline."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise self.error(self._timed_out())
        return httpx.Timeout(remaining, connect=min(self.options.connect_timeout, remaining))

    def _answer(self, response: httpx.Response) -> FetchResult | _Redirect:
        fetched_at = datetime.now(UTC)
        status = response.status_code
        if status in _REDIRECTS:
            return self._redirect(response)
        if status == 304:
            return self._result(response, b"", fetched_at)
        if 200 <= status < 300:
            return self._result(response, self._read_body(response), fetched_at)
        raise self._http_error(response, fetched_at)

    def _redirect(self, response: httpx.Response) -> _Redirect:
        location = response.headers.get("location")
        if not location:
            raise self.error(
                f"{_status_line(response)} without Location", status=response.status_code
            )
        return _Redirect(response.status_code, str(response.url.join(location)))

    def _result(self, response: httpx.Response, body: bytes, fetched_at: datetime) -> FetchResult:
        etag = sendable(response.headers.get("etag"))
        last_modified = sendable(response.headers.get("last-modified"))
        if response.status_code == 304:
            # A 304 may omit the validators; keep ours or the next poll is unconditional.
            etag, last_modified = etag or self.etag, last_modified or self.last_modified
        return FetchResult(
            url=str(response.url),
            status=response.status_code,
            body=body,
            headers={name.lower(): value for name, value in response.headers.items()},
            etag=etag,
            last_modified=last_modified,
            fetched_at=fetched_at,
        )

    def _read_body(self, response: httpx.Response) -> bytes:
        """Stream and decode the body, checking the deadline and the size cap as it comes."""
        cap = self.options.max_body_bytes
        too_large = self.error(f"body larger than {cap} bytes", status=response.status_code)
        if _declared_length(response) > cap:
            raise too_large
        encoding = response.headers.get("content-encoding", "")
        decoder = BodyDecoder(encoding, cap)
        chunks: list[bytes] = []
        try:
            for raw in response.iter_raw():
                # A server trickling bytes never trips the read timeout; the deadline catches it.
                if self.deadline.remaining() <= 0:
                    raise self.error(self._timed_out())
                chunks.append(decoder.decode(raw))
        except BodyTooLarge:
            raise too_large from None
        except DECODE_ERRORS as exc:
            reason = f"could not decode {encoding} body: {exc}"
            raise self.error(reason, status=response.status_code) from exc
        return b"".join(chunks)

    def _http_error(self, response: httpx.Response, fetched_at: datetime) -> FetchError:
        status = response.status_code
        reason = _status_line(response)
        if status == 410:
            reason += ": the feed is gone for good"
        if response.url != httpx.URL(self.url):
            reason += f" (at {response.url})"  # a redirect led there
        retry_after = None
        if status in _RETRY_AFTER_STATUSES:
            header = response.headers.get("retry-after")
            retry_after = retry_after_seconds(header, fetched_at, self.options.retry_after_cap)
        return self.error(reason, status=status, retry_after=retry_after)

    def _timed_out(self, exc: Exception | None = None) -> str:
        if isinstance(exc, httpx.ConnectTimeout) and self.deadline.remaining() > 0:
            return f"connect timed out after {self.options.connect_timeout:g} s"
        return f"timed out after {self.options.total_timeout:g} s"


def sendable(value: str | None) -> str | None:
    """A validator as it can be sent back in a request header; None when it cannot be."""
    return value if value and _SENDABLE.fullmatch(value) else None


def _conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _host_key(url: str) -> str:
    """scheme://host:port, the unit of politeness."""
    parsed = httpx.URL(url)
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    return f"{parsed.scheme}://{parsed.host}:{port}"


def _status_line(response: httpx.Response) -> str:
    # The standard phrase, not the server's: reasons end up in logs and the UI.
    return f"HTTP {response.status_code} {httpx.codes.get_reason_phrase(response.status_code)}"


def _declared_length(response: httpx.Response) -> int:
    try:
        return int(response.headers.get("content-length", "0"))
    except ValueError:
        return 0


def _describe(exc: Exception) -> str:
    """A short reason for a transport failure, from the OS error underneath when there is one."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"invalid URL: {exc}"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "could not resolve host"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause}"
    return str(exc) or type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from (httpx wraps httpcore wraps OSError)."""
    current: BaseException | None = exc
    for _ in range(10):  # bounded: a chain may loop
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__
