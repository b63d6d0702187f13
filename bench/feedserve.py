"""Serve generated feeds on 127.0.0.1 from a separate process, so its CPU is not the client's.

    with FeedFarm(feeds=2000, items=20, profile="summary", hosts=2000) as farm:
        farm.urls            # one URL per feed, spread over `hosts` ports (a port is a host)
        farm.set_mode("conditional")   # 304 when If-None-Match matches the feed's ETag
        farm.set_mode("ignore")        # always 200 with the same body (a server ignoring validators)
        farm.stats()         # the server's CPU seconds and answers by status

Run as a script it is the server: it prints one JSON line (its ports) once it listens.
Bodies are gzipped once at start when the client accepts gzip, as most news sites do.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import resource
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from feedgen import generate_feeds

_REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found"}
_LAST_MODIFIED = "Tue, 24 Nov 2026 08:00:00 GMT"


class _Farm:
    """The server side: bodies by path, the answering mode, counts."""

    def __init__(self, feeds: int, items: int, profile: str, seed: int) -> None:
        docs = [feed.rss() for feed in generate_feeds(feeds, items, profile, seed)]
        self.bodies = {f"/feed/{i}.xml": (doc, gzip.compress(doc, 6)) for i, doc in enumerate(docs)}
        self.mode = "conditional"
        self.answers: Counter[int] = Counter()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        if path.startswith("/_control/"):
            return self._control(path)
        found = self.bodies.get(path)
        if found is None:
            return 404, [], b"not found"
        etag = f'"{path.rsplit("/", 1)[-1]}-v1"'
        validators = [("ETag", etag), ("Last-Modified", _LAST_MODIFIED)]
        if self.mode == "conditional" and headers.get("if-none-match") == etag:
            self.answers[304] += 1
            return 304, validators, b""
        self.answers[200] += 1
        plain, packed = found
        head = [("Content-Type", "application/rss+xml; charset=utf-8"), *validators]
        if "gzip" in headers.get("accept-encoding", ""):
            return 200, [*head, ("Content-Encoding", "gzip")], packed
        return 200, head, plain

    def _control(self, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        command = path.removeprefix("/_control/")
        if command.startswith("mode/"):
            self.mode = command.removeprefix("mode/")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats = {"mode": self.mode, "cpu": usage.ru_utime + usage.ru_stime,
                 "answers": {str(k): v for k, v in self.answers.items()}}
        return 200, [("Content-Type", "application/json")], json.dumps(stats).encode()


async def _serve_connection(farm: _Farm, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            status, extra, body = farm.answer(path, headers)
            close = headers.get("connection", "").lower() == "close"
            out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}", f"Content-Length: {len(body)}"]
            out += [f"{name}: {value}" for name, value in extra]
            out += ["Connection: close"] if close else []
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            if close:
                return
    finally:
        writer.close()


async def _main(args: argparse.Namespace) -> None:
    farm = _Farm(args.feeds, args.items, args.profile, args.seed)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(farm, reader, writer)

    servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512) for _ in range(args.hosts)]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps({"ports": ports}), flush=True)
    await asyncio.Event().wait()  # until terminated


class FeedFarm:
    """The client side: starts the server process, knows the URLs, switches modes."""

    def __init__(self, feeds: int, items: int, profile: str, hosts: int | None = None, seed: int = 1) -> None:
        self.feeds, self.hosts = feeds, max(1, min(hosts or feeds, feeds))
        self._args = ["--feeds", str(feeds), "--items", str(items), "--profile", profile,
                      "--hosts", str(self.hosts), "--seed", str(seed)]
        self._process: subprocess.Popen[str] | None = None
        self.ports: list[int] = []

    def start(self) -> FeedFarm:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *self._args], stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.ports = json.loads(self._process.stdout.readline())["ports"]
        return self

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[i % self.hosts]}/feed/{i}.xml" for i in range(self.feeds)]

    def set_mode(self, mode: str) -> dict[str, Any]:
        return self._get(f"/_control/mode/{mode}")

    def stats(self) -> dict[str, Any]:
        return self._get("/_control/stats")

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[0]}{path}", timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # the process we started, by its handle
            self._process.wait(timeout=10)
            self._process = None

    def __enter__(self) -> FeedFarm:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve generated feeds on 127.0.0.1.")
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--profile", default="summary", choices=["summary", "full", "flood"])
    parser.add_argument("--hosts", type=int, default=100, help="ports to spread the feeds over")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(_main(_arguments()))
