"""Inputs of bench/precision.py: real news entries as negatives, and an embedder that caches."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from monitor.errors import ParseError
from monitor.ingest.parse import parse_feed
from monitor.matching.embedders import Embedder, Kind, Vectors
from monitor.types import Feed, FetchResult

NEWS_FOLDERS = ("feeder-captures", "miniflux-testdata")


def load_negatives(feeds: Path) -> list[tuple[str, str]]:
    """(title, text) of every distinct entry of the captured news feeds, as the pipeline stores them."""
    files = sorted(path for folder in NEWS_FOLDERS for path in (feeds / folder).rglob("*") if path.is_file())
    if not files:
        raise SystemExit(f"no feed files under {feeds}/{{{','.join(NEWS_FOLDERS)}}}: is ../shared there?")
    seen: set[tuple[str, str]] = set()
    for path in files:
        for article in _articles(path):
            seen.add((article[0], article[1]))
    return sorted(seen)


def _articles(path: Path) -> list[tuple[str, str]]:
    kind = "application/feed+json" if path.suffix == ".json" else "application/xml"
    doc = FetchResult(url=f"http://news.test/{path.name}", status=200, body=path.read_bytes(),
                      headers={"content-type": kind}, etag=None, last_modified=None,
                      fetched_at=datetime.now(UTC))
    try:
        parsed = parse_feed(doc, Feed(id=path.stem, url=doc.url))
    except ParseError:
        return []  # an empty or broken capture holds no entries
    return [(article.title, article.text) for article in parsed.articles]


class CachedEmbedder:
    """An Embedder whose embed() results are kept on disk, keyed by model, kind and texts."""

    def __init__(self, embedder: Embedder, folder: Path | None) -> None:
        self._embedder = embedder
        self._folder = folder

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    @property
    def max_tokens(self) -> int:
        return self._embedder.max_tokens

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        if self._folder is None:
            return self._embedder.embed(texts, kind)
        digest = hashlib.sha256("\0".join([self.model_id, kind, *texts]).encode()).hexdigest()
        path = self._folder / f"{digest[:32]}.npy"
        if path.is_file():
            return np.load(path)
        vectors = self._embedder.embed(texts, kind)
        self._folder.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self._embedder.truncate(text, max_tokens)
