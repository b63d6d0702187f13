"""A loopback HTTP server that plays the part of the feeds' web servers in tests.

    with FeedServer() as server:
        server.route("/feed.xml", Response(body=b"<rss/>", headers={"ETag": '"v1"'}))
        fetch(server.url("/feed.xml"))
        assert server.requests_to("/feed.xml")[0].headers["user-agent"]

A route answers with a fixed `Response` or with a function `Request -> Response`; unknown
paths answer 404. The server adds Content-Length unless the route sets it (to lie about
it), asks for `Transfer-Encoding: chunked` (the body is then sent chunked) or trickles.
`delay` and `trickle` make slow servers; both give up as soon as the server stops, so
`stop()` never waits for them.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

# A handler whose client went away must end quietly, not print a traceback.
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass
class Response:
    """What a route answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    trickle: float = 0.0  # if > 0, send the body one byte per `trickle` seconds, no length


@dataclass(frozen=True)
class Request:
    """A request as the server received it; header names are lower-cased."""

    method: str
    path: str  # as sent, query string included
    headers: dict[str, str]


Route = Response | Callable[[Request], Response]


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def _matches(pattern: str, path: str) -> bool:
    """A pattern with a query matches exactly; one without ignores the query."""
    return pattern == path if "?" in pattern else pattern == _path_only(path)


class FeedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with a random free port."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.connections = 0  # TCP connections accepted: fewer than requests when kept alive
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def start(self) -> FeedServer:
        """Bind a free port and serve from a daemon thread."""
        self._httpd = httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
        # A short poll interval keeps stop() quick: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake slow handlers and close every connection."""
        self._stopping.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            # shutdown() wakes a handler blocked reading the next keep-alive request.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def route(self, path: str, response: Route) -> None:
        """Answer requests to `path` with `response`, replacing any earlier route."""
        with self._lock:
            self._routes[path] = response

    def requests_to(self, path: str) -> list[Request]:
        """The requests received for `path`, matched as routes are."""
        with self._lock:
            return [request for request in self.requests if _matches(path, request.path)]

    def _record(self, request: Request) -> Route | None:
        """Remember the request and find its route: an exact match first."""
        with self._lock:
            self.requests.append(request)
            exact = self._routes.get(request.path)
            return exact if exact is not None else self._routes.get(_path_only(request.path))


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # server_close() must not join handlers stuck on a client

    def __init__(self, address: tuple[str, int], handler: Any, owner: FeedServer) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up; report anything else."""
        if not isinstance(_current_exception(), _DISCONNECTS):
            super().handle_error(request, client_address)


def _current_exception() -> BaseException | None:
    return sys.exc_info()[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    # Headers and body go out as separate writes; without this each answer waits ~40 ms for
    # a delayed ACK, which slows every test that polls many feeds.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.owner._lock:
            self.server.owner._connections.add(self.connection)
            self.server.owner.connections += 1

    def finish(self) -> None:
        with self.server.owner._lock:
            self.server.owner._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Tests read `requests`, not a log."""

    def do_GET(self) -> None:
        self._answer()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _answer(self) -> None:
        owner = self.server.owner
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._discard_request_body(headers)
        request = Request(method=self.command, path=self.path, headers=headers)
        route = owner._record(request)
        response = self._resolve(route, request)
        if response.delay > 0 and owner._stopping.wait(response.delay):
            self.close_connection = True
            return
        try:
            self._send(response)
        except _DISCONNECTS:
            self.close_connection = True

    def _discard_request_body(self, headers: dict[str, str]) -> None:
        length = int(headers.get("content-length", "0") or 0)
        if length:
            self.rfile.read(length)

    def _resolve(self, route: Route | None, request: Request) -> Response:
        """The route's answer; a route function that raises answers 500 with the traceback."""
        if route is None:
            return Response(status=404, body=b"not found")
        if isinstance(route, Response):
            return route
        try:
            return route(request)
        except Exception:
            text = traceback.format_exc()
            print(text)  # pytest shows it with the failing test
            return Response(status=500, body=text.encode())

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        names = {name.lower() for name in response.headers}
        for name, value in response.headers.items():
            self.send_header(name, value)
        chunked = "chunked" in _header(response, "transfer-encoding").lower()
        if response.trickle > 0 and not chunked:
            # No length: the body ends when the connection closes.
            self.send_header("Connection", "close")
            self.close_connection = True
        elif not chunked and "content-length" not in names:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self._send_body(response, chunked)

    def _send_body(self, response: Response, chunked: bool) -> None:
        if response.trickle > 0:
            self._trickle(response, chunked)
        elif chunked:
            self._write_chunk(response.body)
            self._write_chunk(b"")
        else:
            self.wfile.write(response.body)

    def _trickle(self, response: Response, chunked: bool) -> None:
        for i in range(len(response.body)):
            if self.server.owner._stopping.wait(response.trickle):
                self.close_connection = True
                return
            byte = response.body[i : i + 1]
            self._write_chunk(byte) if chunked else self.wfile.write(byte)
            self.wfile.flush()
        if chunked:
            self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _header(response: Response, name: str) -> str:
    """A response header by case-insensitive name, or ''."""
    for key, value in response.headers.items():
        if key.lower() == name:
            return value
    return ""
