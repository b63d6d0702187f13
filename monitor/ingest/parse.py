"""Feed documents to articles: RSS, RDF and Atom through feedparser, JSON Feed by hand.

Both readers produce the same `Entry` values; one function turns those into `Article`s,
so identity, dates and fallbacks follow the same rules whatever the format.
"""

from __future__ import annotations

import calendar
import codecs
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.ingest.dedup import canonical_url, content_hash, entry_guid, guid_hash
from monitor.ingest.entries import Entry, aware_utc, has_year, language_tag
from monitor.ingest.json_feed import read_json_feed
from monitor.ingest.text import clean_line, html_to_text, plain_to_text, storable
from monitor.types import Article, Feed, FetchResult, ParsedFeed

# A date this far past the fetch is a publisher's clock or timezone error, not news
# from the future; such entries would otherwise sort above everything for days.
FUTURE_TOLERANCE = timedelta(minutes=10)
# Dates outside [EARLIEST_DATE, fetch + ABSURD_FUTURE] are nonsense (9999-12-31, year 0): the
# fetch time is used, as for a missing date, and the poll's warning counts them.
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=UTC)
ABSURD_FUTURE = timedelta(days=1)
FALLBACK_TITLE_CHARS = 120
UNTITLED = "(untitled)"

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # UTF-32 BOMs start alike


@dataclass
class _Tally:
    """What the parser repaired in one document's entries, for the poll's warning."""

    repaired: int = 0  # entries that held characters a database cannot store
    bad_dates: int = 0  # entries whose date was unreadable or absurd: fetch time used

    def notes(self) -> list[str]:
        notes = []
        if self.repaired:
            notes.append(f"{self.repaired} item(s) repaired: characters a database cannot store removed")
        if self.bad_dates:
            notes.append(f"{self.bad_dates} item(s) with an unreadable or out-of-range date: "
                         "fetch time used")
        return notes


def parse_feed(doc: FetchResult, feed: Feed) -> ParsedFeed:
    """The articles of one fetched document; ParseError when it holds no feed at all."""
    if not doc.body.strip():
        raise ParseError(doc.url, "empty document")
    fetched = aware_utc(doc.fetched_at) if doc.fetched_at else datetime.now(UTC)
    if doc.body.removeprefix(codecs.BOM_UTF8).lstrip()[:1] == b"{":
        title, entries, warning = read_json_feed(doc)
    else:
        title, entries, warning = _read_xml_feed(doc)
    tally = _Tally()
    articles = _articles(entries, feed, doc.url, fetched, tally)
    notes = "; ".join(filter(None, [warning, *tally.notes()]))
    return ParsedFeed(title=storable(title) or None, articles=articles, warning=notes or None)


def _articles(
    entries: Iterable[Entry], feed: Feed, base: str, fetched: datetime, tally: _Tally
) -> tuple[Article, ...]:
    """Articles in document order; of entries sharing a guid only the first counts."""
    seen: set[str] = set()
    articles = []
    for raw in entries:
        entry = _repaired(raw)
        tally.repaired += entry != raw
        if entry.dated and not _usable_date(entry.published, fetched):
            tally.bad_dates += 1
        article = _article(entry, feed, base, fetched)
        if article is not None and article.guid not in seen:
            seen.add(article.guid)
            articles.append(article)
    return tuple(articles)


def _article(entry: Entry, feed: Feed, base: str, fetched: datetime) -> Article | None:
    """The article for one entry, or None when the entry has nothing to show."""
    url = canonical_url(entry.link, base) if entry.link else None
    if not (entry.title or entry.text or url):
        return None
    title = entry.title or _fallback_title(entry.text)
    guid = entry_guid(entry.id, url, title, entry.published_raw)
    published = entry.published
    if published is None or published < EARLIEST_DATE or published > fetched + FUTURE_TOLERANCE:
        published = fetched
    # A link-only entry has no content to compare; hashing its URL in keeps every such
    # entry from looking like a copy of every other.
    compared = entry.text if entry.title or entry.text else url or ""
    return Article(
        feed_id=feed.id,
        guid=guid,
        guid_hash=guid_hash(guid),
        url=url,
        title=title,
        text=entry.text,
        author=entry.author,
        language=(feed.language or "").strip().lower() or entry.language,
        published=published,
        fetched=fetched,
        content_hash=content_hash(title, compared),
    )


def _repaired(entry: Entry) -> Entry:
    """The entry with every string made storable (one NUL must not keep a feed out for good)."""
    def fix(value: str | None) -> str | None:
        return storable(value) if value else value

    return replace(
        entry, id=fix(entry.id), link=fix(entry.link), title=storable(entry.title),
        text=storable(entry.text), author=fix(entry.author), published_raw=fix(entry.published_raw),
    )


def _usable_date(published: datetime | None, fetched: datetime) -> bool:
    """Whether a written date is one to believe (a little in the future is a clock's error)."""
    return published is not None and EARLIEST_DATE <= published <= fetched + ABSURD_FUTURE


def _fallback_title(text: str) -> str:
    """The start of the text, cut at a word, for an entry without a title."""
    line = " ".join(text.split())
    if len(line) <= FALLBACK_TITLE_CHARS:
        return line or UNTITLED
    cut = line[:FALLBACK_TITLE_CHARS]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


# --- RSS, RDF, Atom ------------------------------------------------------------------


def _read_xml_feed(doc: FetchResult) -> tuple[str, list[Entry], str | None]:
    """Title, entries and bozo warning of an XML feed, through feedparser."""
    parsed = feedparser.parse(
        io.BytesIO(doc.body),  # bytes given directly could be taken for a file name
        response_headers=_feedparser_headers(doc),
        # We keep no markup: sanitising and rewriting links inside it would be wasted work.
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    problem = _describe(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    if not parsed.get("version") and not parsed.entries:
        raise ParseError(doc.url, _not_a_feed(doc, problem))
    feed_language = language_tag(parsed.feed.get("language"))
    entries = [_xml_entry(entry, feed_language) for entry in parsed.entries]
    return _detail_text(parsed.feed.get("title_detail"), line=True), entries, problem


def _feedparser_headers(doc: FetchResult) -> dict[str, str]:
    """Response headers as feedparser should see them."""
    headers = {name.lower(): value for name, value in doc.headers.items()}
    charset = _CHARSET.search(headers.get("content-type", ""))
    # feedparser follows RFC 3023, where text/xml without charset means US-ASCII; most
    # servers mean the document's own declaration (RFC 7303). Declaring application/xml
    # gives that: the charset parameter, else BOM or XML declaration, else UTF-8. A BOM
    # is the surest sign of all, so a charset then is left out.
    if charset and not doc.body.startswith(_BOMS):
        headers["content-type"] = f"application/xml; charset={charset.group(1)}"
    else:
        headers["content-type"] = "application/xml"
    # No base URL: feedparser would resolve RSS guids against it, so "item-42" would
    # become a different guid once the feed moves (http to https, a 301). Links stay
    # relative here and are resolved against the document URL by canonical_url.
    headers.pop("content-location", None)
    return headers


def _xml_entry(entry: Mapping[str, Any], feed_language: str | None) -> Entry:
    """An Entry from a feedparser entry."""
    contents = entry.get("content") or []
    body = max(contents, key=lambda c: len(c.get("value") or "")) if contents else None
    details = [*contents, entry.get("summary_detail"), entry.get("title_detail")]
    declared = [entry.get("language"), *(d.get("language") for d in details if d)]
    author = (entry.get("author_detail") or {}).get("name") or entry.get("author") or ""
    return Entry(
        id=entry.get("id"),
        link=entry.get("link"),
        title=_detail_text(entry.get("title_detail"), line=True),
        text=_detail_text(body or entry.get("summary_detail")),
        author=clean_line(author, is_html=False) or None,
        language=next(filter(None, map(language_tag, declared)), feed_language),
        published=_struct_utc(entry.get("published_parsed") or _own(entry, "updated_parsed")),
        published_raw=entry.get("published"),
        dated=has_year(_own(entry, "published"), _own(entry, "updated")),
    )


def _own(entry: Mapping[str, Any], key: str) -> Any:
    """The entry's own value; .get() of a missing "updated*" key warns and returns "published*"."""
    return entry[key] if key in entry else None  # noqa: SIM401 (.get is what warns)


def _detail_text(detail: Mapping[str, Any] | None, *, line: bool = False) -> str:
    """Plain text of a feedparser text construct, which may be HTML or plain text."""
    if not detail:
        return ""
    value, is_html = detail.get("value") or "", detail.get("type") != "text/plain"
    if line:
        return clean_line(value, is_html=is_html)
    return html_to_text(value) if is_html else plain_to_text(value)


def _struct_utc(value: Any) -> datetime | None:
    """feedparser's UTC struct_time as an aware datetime; None when absent or impossible."""
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _not_a_feed(doc: FetchResult, problem: str | None) -> str:
    """Why a document without feed and entries was refused."""
    content_type = next((v for k, v in doc.headers.items() if k.lower() == "content-type"), "")
    start = doc.body[:1024].lower()
    if "html" in content_type.lower() or b"<html" in start or b"<!doctype html" in start:
        return "not a feed: looks like HTML"
    return f"not a feed: {problem}" if problem else "not a feed: no feed element found"


def _describe(exc: object) -> str:
    """A short line naming a parser exception."""
    return f"{type(exc).__name__}: {exc}"[:200]


