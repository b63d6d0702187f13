"""Editing feeds.toml in place (tomlkit keeps the user's comments and layout)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.items import Table

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.ingest.discover import DiscoveredFeed

_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOST_PREFIXES = ("www.", "feeds.", "feed.", "rss.", "rss2.", "news.")
# C0, DEL, C1 and the bidi controls: a feed's own title is a stranger's text, and the config
# refuses control characters (a NUL in a name cannot even be stored on PostgreSQL).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


def add_feed(
    path: Path,
    found: DiscoveredFeed,
    *,
    feed_id: str | None = None,
    interval: str | None = None,
    name: str | None = None,
) -> str:
    """Append a [feeds.<id>] table to the config file and return the id used."""
    document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    feeds = _feeds_table(document)
    _refuse_duplicate(path, feeds, found.url, feed_id)
    chosen = feed_id or suggest_id(found.url, set(feeds))
    if not _ID_OK.match(chosen):
        raise ConfigError(path, [f"feeds.{chosen}: feed id must be letters, digits, '_', '-' or '.'"])
    entry = tomlkit.table()
    entry["url"] = found.url
    title = clean_title(found.title)
    if name or title:
        entry["name"] = name or title
    if interval:
        entry["interval"] = interval
    feeds[chosen] = entry
    text = tomlkit.dumps(document)
    parse_config(text.encode("utf-8"), path)  # never write a file the monitor would reject
    _write_atomically(path, text)
    return chosen


def clean_title(title: str | None) -> str | None:
    """A discovered feed title fit for feeds.toml: control characters become spaces, runs collapse."""
    if title is None:
        return None
    return " ".join(_UNPRINTABLE.sub(" ", title).split()) or None


def suggest_id(url: str, taken: set[str]) -> str:
    """A short id from the host name ("www.theguardian.com" -> "theguardian"), made unique."""
    host = (urlsplit(url).hostname or "feed").lower()
    for prefix in _HOST_PREFIXES:
        host = host.removeprefix(prefix)
    base = re.sub(r"[^a-z0-9]+", "-", host.split(".")[0]).strip("-") or "feed"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _feeds_table(document: Any) -> Any:
    if "feeds" not in document:
        document.add(tomlkit.nl())
        document["feeds"] = tomlkit.table(is_super_table=True)
    return document["feeds"]


def _refuse_duplicate(path: Path, feeds: Any, url: str, feed_id: str | None) -> None:
    if feed_id is not None and feed_id in feeds:
        raise ConfigError(path, [f"feeds.{feed_id}: already exists; choose another --id"])
    for existing_id, entry in feeds.items():
        if isinstance(entry, dict | Table) and entry.get("url") == url:
            raise ConfigError(path, [f"feeds.{existing_id}: already polls {url}"])


def _write_atomically(path: Path, text: str) -> None:
    """A reader (the running monitor) sees the old file or the new one, never half of it."""
    path = path.resolve()
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
