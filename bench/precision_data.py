"""Inputs of the precision benchmarks: real news entries as negatives, split in two halves by
feed file, and embedders that cache their vectors on disk."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from monitor.errors import ParseError
from monitor.ingest.parse import parse_feed
from monitor.matching.embedders import Embedder, Kind, Vectors
from monitor.matching.languages import detect
from monitor.matching.multilingual import DualEmbedder, UseEmbedder
from monitor.matching.scoring import EmbeddedText
from monitor.matching.stage import BACKGROUND_PASSAGES, make_embedder
from monitor.types import Feed, FetchResult

NEWS_FOLDERS = ("feeder-captures", "miniflux-testdata")
CHOOSE, REPORT = "A", "B"  # the half thresholds and calibration are chosen on, the half reported


@dataclass(frozen=True)
class News:
    """Distinct news entries (sorted, as load_negatives returns them), each with its half and language."""

    entries: list[tuple[str, str]]
    halves: list[str]  # CHOOSE or REPORT
    languages: list[str]  # "ru", "uk" or "other", detected on the entry
    files: dict[str, str]  # feed file (relative path) -> its half

    def half(self, name: str) -> list[int]:
        """Positions of the entries of one half."""
        return [i for i, h in enumerate(self.halves) if h == name]


def load_negatives(feeds: Path) -> list[tuple[str, str]]:
    """(title, text) of every distinct entry of the captured news feeds, as the pipeline stores them."""
    return load_news(feeds).entries


def load_news(feeds: Path) -> News:
    """The news entries split in two halves by feed file, language by language.

    Files are grouped by their entries' usual language (ru, uk, other); in each group, largest
    first, they go to REPORT, CHOOSE, REPORT, ... (so the only Ukrainian file is held out). An
    entry found in files of both halves belongs to CHOOSE only: REPORT stays unseen.
    """
    files = sorted(path for folder in NEWS_FOLDERS for path in (feeds / folder).rglob("*") if path.is_file())
    if not files:
        raise SystemExit(f"no feed files under {feeds}/{{{','.join(NEWS_FOLDERS)}}}: is ../shared there?")
    articles = {path: sorted(set(_articles(path))) for path in files}
    language = {entry: _language(entry) for found in articles.values() for entry in found}
    groups: dict[str, list[Path]] = {}
    for path in files:
        usual = Counter(language[e] for e in articles[path]).most_common(1)
        groups.setdefault(usual[0][0] if usual else "other", []).append(path)
    half: dict[Path, str] = {}
    for group in groups.values():
        for rank, path in enumerate(sorted(group, key=lambda p: (-len(articles[p]), p))):
            half[path] = REPORT if rank % 2 == 0 else CHOOSE
    owner: dict[tuple[str, str], str] = {}
    for path in files:
        for entry in articles[path]:
            owner[entry] = CHOOSE if CHOOSE in (owner.get(entry), half[path]) else REPORT
    entries = sorted(owner)
    return News(entries, [owner[e] for e in entries], [language[e] for e in entries],
                {str(p.relative_to(feeds)): half[p] for p in files})


def news_by_feed(feeds: Path) -> dict[str, list[tuple[str, str]]]:
    """(title, text) of the distinct entries of each captured news feed file, by file name; an
    entry found in several files belongs to the first (the stories benchmark counts outlets)."""
    files = sorted(path for folder in NEWS_FOLDERS for path in (feeds / folder).rglob("*") if path.is_file())
    if not files:
        raise SystemExit(f"no feed files under {feeds}/{{{','.join(NEWS_FOLDERS)}}}: is ../shared there?")
    seen: set[tuple[str, str]] = set()
    found: dict[str, list[tuple[str, str]]] = {}
    for path in files:
        fresh = [entry for entry in sorted(set(_articles(path))) if entry not in seen]
        seen.update(fresh)
        if fresh:
            found[str(path.relative_to(feeds))] = fresh
    return found


def _language(entry: tuple[str, str]) -> str:
    language = detect(f"{entry[0]}. {entry[1][:600]}")
    return language if language in ("ru", "uk") else "other"


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


def background_sample(texts: Sequence[EmbeddedText]) -> tuple[np.ndarray, list[str]]:
    """At most BACKGROUND_PASSAGES passages (vector, language), drawn at random (seeded) as the
    pipeline's sample of stored passages."""
    stacked = np.vstack([text.vectors for text in texts])
    languages = [language for text in texts for language in text.languages]
    rng = np.random.default_rng(14)
    chosen = np.sort(rng.choice(len(stacked), min(len(stacked), BACKGROUND_PASSAGES), replace=False))
    return stacked[chosen], [languages[i] for i in chosen.tolist()]


def cached_embedders(
    model: str, folder: Path | None, backend: str = "onnx"
) -> tuple[CachedEmbedder, DualEmbedder]:
    """The primary model alone, and the pipeline's default pair of it and the multilingual model.

    Each model is cached on its own, so vectors of the primary model stored by earlier runs
    (and by the primary-only scorer in the same run) serve the pair too.
    """
    primary = CachedEmbedder(make_embedder(model, None, None, backend=backend), folder)
    return primary, DualEmbedder(primary, CachedEmbedder(UseEmbedder(), folder))


class CachedEmbedder:
    """An Embedder whose embed() results are kept on disk, keyed by model, kind and texts.

    A batch is stored whole under the hash of its texts; within a run, texts already seen in
    another batch are not embedded again (a batch differing by a few passages costs those only).
    """

    def __init__(self, embedder: Embedder, folder: Path | None) -> None:
        self._embedder = embedder
        self._folder = folder
        self._seen: dict[tuple[str, str], np.ndarray] = {}

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
            vectors: Vectors = np.load(path)
        else:
            vectors = self._embed_unseen(texts, kind)
            self._folder.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
        self._seen.update(((kind, text), vector) for text, vector in zip(texts, vectors, strict=True))
        return vectors

    def _embed_unseen(self, texts: Sequence[str], kind: Kind) -> Vectors:
        unseen = sorted({text for text in texts if (kind, text) not in self._seen})
        fresh = dict(zip(unseen, self._embedder.embed(unseen, kind), strict=True)) if unseen else {}
        rows = [fresh[text] if text in fresh else self._seen[(kind, text)] for text in texts]
        stacked: Vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimension)
        return stacked

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self._embedder.truncate(text, max_tokens)
