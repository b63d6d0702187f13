"""Every document of the shared corpus served over HTTP and polled: no crash, no hang, nothing lost."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.errors import ParseError
from monitor.ingest.fetch import Fetcher, FetchOptions
from monitor.ingest.parse import parse_feed
from monitor.ingest.poller import Pipeline
from monitor.types import Feed, FeedReport, FeedStatus, FetchResult, PollResult
from storage.repo import Repository

from corpus import CORPUS, declared_headers, expected_guids
from feedserver import FeedServer, Response

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} is absent"),
]

WORKERS = 8
CONTENT_TYPES = {
    ".xml": "application/xml",
    ".json": "application/feed+json",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
}
# The files hold plain bytes: a declared coding or length would describe another body
# (feedparser's own server sends Content-Encoding only for its compressed cases).
NOT_SERVED = frozenset({"content-encoding", "content-length", "transfer-encoding"})
FINAL = frozenset({FeedStatus.OK, FeedStatus.ERROR})


@dataclass(frozen=True)
class Document:
    """One corpus file as the loopback server serves it."""

    path: Path  # relative to CORPUS
    body: bytes
    headers: dict[str, str]  # names lower-cased

    @property
    def route(self) -> str:
        return "/" + self.path.as_posix()

    @property
    def feed_id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.path.as_posix().replace("/", "."))


def corpus_documents() -> list[Document]:
    """Every file under CORPUS with the headers it declares, else a type by extension."""
    documents = []
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
        body = path.read_bytes()
        headers = {"content-type": CONTENT_TYPES.get(path.suffix, "application/octet-stream")}
        declared = declared_headers(body).items()
        headers |= {name: value for name, value in declared if name not in NOT_SERVED}
        documents.append(Document(path.relative_to(CORPUS), body, headers))
    return documents


def derived_guids(document: Document, feed: Feed) -> set[str]:
    """The guids parse_feed derives from the document's bytes and headers."""
    doc = FetchResult(feed.url, 200, document.body, document.headers, etag=None, last_modified=None)
    try:
        return {article.guid for article in parse_feed(doc, feed).articles}
    except ParseError:
        return set()


def problem(document: Document, feed: Feed, result: PollResult, report: FeedReport) -> str | None:
    """What went wrong with one document, or None."""
    if result.status not in FINAL or report.status not in FINAL:
        return f"{document.path}: poll ended {result.status}, stored status {report.status}"
    derived = derived_guids(document, feed)
    # Every entry feedparser finds with a title or link must be among them; parse_feed
    # also keeps entries with text only, so those count on the stored side.
    lost = expected_guids(document.body, feed.url, document.headers) - derived
    if lost or report.article_count != len(derived):
        return (
            f"{document.path}: stored {report.article_count}, parse_feed derives "
            f"{len(derived)}, lost {sorted(lost)[:3]}, error {report.last_error!r}"
        )
    return None


@pytest.mark.timeout(120)
def test_every_corpus_document_is_polled_and_its_entries_stored(
    sqlite_engine: Engine, feed_server: FeedServer
) -> None:
    documents = corpus_documents()
    feeds = [Feed(doc.feed_id, feed_server.url(doc.route)) for doc in documents]
    assert len({feed.id for feed in feeds}) == len(documents)
    for doc in documents:
        feed_server.route(doc.route, Response(200, doc.body, doc.headers))
    repo = Repository(sqlite_engine)
    repo.sync_feeds(feeds)
    # Every feed is on 127.0.0.1: politeness per host would serialise the whole corpus.
    options = FetchOptions(per_host_delay=0, per_host_concurrency=WORKERS, total_timeout=5, connect_timeout=2)
    with Fetcher(options) as fetcher:
        pipeline = Pipeline(repo, fetcher, rng=random.Random(7))
        results = pipeline.poll_many(feeds, workers=WORKERS)  # raises what a poll let escape

    assert sorted(result.feed_id for result in results) == sorted(feed.id for feed in feeds)
    by_id = {result.feed_id: result for result in results}
    # Status and stored (feed, guid) sources of every feed, read in one go.
    reports = {report.id: report for report in repo.feed_reports(feeds)}
    problems = [
        found
        for doc, feed in zip(documents, feeds, strict=True)
        if (found := problem(doc, feed, by_id[feed.id], reports[feed.id]))
    ]
    assert problems == []
