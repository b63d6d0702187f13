"""The shared feed corpus under ../shared/data/feeds: where it is and what it should yield."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from pathlib import Path

import feedparser

from monitor.ingest.dedup import canonical_url, entry_guid
from monitor.ingest.text import clean_line

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "feeds"

# feedparser's own test server reads the headers a case declares with this pattern.
_DECLARED_HEADER = re.compile(rb"^Header:\s+([^:]+):(.+)$", re.MULTILINE)


def declared_headers(body: bytes) -> dict[str, str]:
    """The HTTP headers a feedparser-suite file declares (`Header: Name: value`), names lower-cased."""
    return {
        name.decode("latin-1").strip().lower(): value.decode("latin-1").strip()
        for name, value in _DECLARED_HEADER.findall(body)
    }


def expected_guids(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> set[str]:
    """Distinct guids of the entries that feedparser finds with a title or a link."""
    if body.lstrip()[:1] == b"{":  # JSON Feed, which feedparser does not read
        return {str(item["id"]) for item in json.loads(body)["items"]}
    # feedparser looks headers up by lower-case name, as its own HTTP client stores them.
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    # parse_feed resolves ids and links against the document URL, never Content-Location
    # (RFC 7231 dropped it as a base URI); feedparser would resolve them against it.
    lowered.pop("content-location", None)
    parsed = feedparser.parse(io.BytesIO(body), response_headers=lowered, sanitize_html=False)
    guids = set()
    for entry in parsed.entries:
        detail = entry.get("title_detail") or {}
        title = clean_line(detail.get("value", ""), is_html=detail.get("type") != "text/plain")
        link = canonical_url(entry["link"], url) if entry.get("link") else None
        if title or link:
            guids.add(entry_guid(entry.get("id"), link, title, entry.get("published")))
    return guids
