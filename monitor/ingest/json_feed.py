"""JSON Feed 1.0 and 1.1 documents to entries (feedparser 6 does not read them)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from monitor.errors import ParseError
from monitor.ingest.entries import Entry, aware_utc, has_year, json_string, language_tag
from monitor.ingest.text import clean_line, html_to_text, plain_to_text
from monitor.types import FetchResult

_JSON_FEED_VERSION = re.compile(r"https?://jsonfeed\.org/version/")


def read_json_feed(doc: FetchResult) -> tuple[str, list[Entry], None]:
    """Title and entries of a JSON Feed 1.0 or 1.1 document."""
    try:
        data = json.loads(doc.body)  # detects UTF-8/16/32 and a UTF-8 BOM itself
    except ValueError as exc:
        raise ParseError(doc.url, f"not a feed: invalid JSON ({exc})") from None
    except RecursionError:
        raise ParseError(doc.url, "not a feed: JSON nested too deeply") from None
    if not isinstance(data, dict) or not _JSON_FEED_VERSION.match(json_string(data.get("version"))):
        raise ParseError(doc.url, "not a feed: JSON but not a JSON Feed")
    items = data.get("items")
    language, author = language_tag(data.get("language")), _json_author(data)
    entries = [
        _json_entry(item, language, author)
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]
    return clean_line(json_string(data.get("title")), is_html=False), entries, None


def _json_entry(item: Mapping[str, Any], language: str | None, author: str | None) -> Entry:
    """An Entry from a JSON Feed item; feed language and author are its defaults."""
    html = json_string(item.get("content_html"))
    plain = json_string(item.get("content_text")) or json_string(item.get("summary"))
    published_raw = json_string(item.get("date_published"))
    written = published_raw or json_string(item.get("date_modified"))
    return Entry(
        id=json_string(item.get("id")),
        link=json_string(item.get("url")) or json_string(item.get("external_url")),
        title=clean_line(json_string(item.get("title")), is_html=False),
        text=html_to_text(html) if html else plain_to_text(plain),
        author=_json_author(item) or author,
        language=language_tag(item.get("language")) or language,
        published=_iso_utc(written),
        published_raw=published_raw or None,
        dated=has_year(written),
    )


def _json_author(obj: Mapping[str, Any]) -> str | None:
    """Names from `authors` (1.1) or `author` (1.0), comma-separated."""
    people = obj.get("authors")
    if not isinstance(people, list):
        people = [obj.get("author")]
    names = [json_string(p.get("name")) for p in people if isinstance(p, dict)]
    return clean_line(", ".join(filter(None, names)), is_html=False) or None


def _iso_utc(value: str) -> datetime | None:
    """An RFC 3339 date (or, leniently, an RFC 822 one) as aware UTC."""
    if not value:
        return None
    try:
        return aware_utc(datetime.fromisoformat(value))
    except ValueError:
        pass
    except OverflowError:  # 9999-12-31T23:00-05:00 is past datetime's last day in UTC
        return None
    try:
        return aware_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


