"""Finding the feed behind a URL: the URL itself, or a page's <link rel="alternate">."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

from monitor.errors import DiscoveryError, FetchError, ParseError
from monitor.ingest.fetch import Fetcher
from monitor.ingest.parse import parse_feed
from monitor.types import Feed, FetchResult

FEED_TYPES = {
    "application/rss+xml", "application/atom+xml", "application/rdf+xml",
    "application/feed+json", "application/json", "text/xml", "application/xml",
}


@dataclass(frozen=True)
class DiscoveredFeed:
    """A URL known to serve a feed, and the feed's title."""

    url: str
    title: str | None
    entries: int


class _FeedLinks(HTMLParser):
    """Collects the hrefs of <link rel="alternate" type="<a feed type>"> in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        attr = {name: (value or "") for name, value in attrs}
        rels = attr.get("rel", "").lower().split()
        kind = attr.get("type", "").lower().split(";")[0].strip()
        if "alternate" in rels and kind in FEED_TYPES and attr.get("href"):
            self.hrefs.append(attr["href"].strip())


def feed_links(html: str, base: str) -> list[str]:
    """Absolute URLs of the feeds a page advertises, without repeats."""
    parser = _FeedLinks()
    parser.feed(html)
    parser.close()
    return list(dict.fromkeys(urljoin(base, href) for href in parser.hrefs))


def discover_feed(url: str, fetcher: Fetcher) -> DiscoveredFeed:
    """The feed at `url`, or the first working feed the page at `url` links to."""
    doc = _fetch(url, fetcher)
    try:
        return _as_feed(url, doc)
    except ParseError:
        pass
    links = feed_links(_decode(doc), doc.url)
    if not links:
        raise DiscoveryError(
            f"{url}: not a feed, and the page has no <link rel=\"alternate\"> to an RSS, "
            "Atom or JSON feed"
        )
    problems = []
    for link in links:
        try:
            return _as_feed(link, _fetch(link, fetcher))
        except (DiscoveryError, ParseError) as exc:
            problems.append(str(exc))
    raise DiscoveryError(f"{url}: none of the feeds the page links to works: " + "; ".join(problems))


def _fetch(url: str, fetcher: Fetcher) -> FetchResult:
    try:
        return fetcher.fetch(url)
    except FetchError as exc:
        raise DiscoveryError(f"{url}: {exc.reason}") from exc


def _as_feed(url: str, doc: FetchResult) -> DiscoveredFeed:
    """Parse a fetched document; a permanently moved feed is recorded at its new home."""
    parsed = parse_feed(doc, Feed(id="candidate", url=url))
    return DiscoveredFeed(doc.permanent_url or url, parsed.title, len(parsed.articles))


def _decode(doc: FetchResult) -> str:
    content_type = doc.headers.get("content-type", "")
    charset = content_type.partition("charset=")[2].split(";")[0].strip(" \"'") or "utf-8"
    try:
        return doc.body.decode(charset, errors="replace")
    except LookupError:
        return doc.body.decode("utf-8", errors="replace")
