"""Kept libraries against the hand-written sentence splitter and URL canonicaliser (issue 12).

    .venv/bin/pip install pysbd syntok courlan w3lib   # only for this comparison
    .venv/bin/python bench/libraries.py                 # speed and agreement on the corpus
    Q12_SPLITTER=pysbd PYTHONPATH=bench .venv/bin/pytest -q -p libraries tests/test_passages.py
    Q12_CANONICAL=courlan PYTHONPATH=bench .venv/bin/pytest -q -p libraries tests/test_dedup.py
    Q12_SPLITTER=syntok PYTHONPATH=bench HF_HUB_OFFLINE=1 .venv/bin/python -c \
        "import libraries, runpy; runpy.run_path('bench/precision.py', run_name='__main__')"

Loaded as a pytest plugin (`-p libraries`), or imported, it swaps the candidate named by
Q12_SPLITTER (pysbd, syntok) or Q12_CANONICAL (courlan, w3lib) into the pipeline, so the
project's own tests and bench/precision.py measure it. Each candidate keeps what the callers
rely on and the library does not do: a line break ends a sentence; only http(s) URLs are
kept, relative links resolve against the base, tracking parameters go.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import monitor.ingest.dedup as dedup
import monitor.ingest.parse as parse
import monitor.matching.index as index
import monitor.matching.passages as passages

Splitter = Callable[[str], list[str]]
Canonical = Callable[..., str | None]


def _per_line(split_line: Splitter) -> Splitter:
    def split(text: str) -> list[str]:
        return [s.strip() for line in text.splitlines() for s in split_line(line) if s.strip()]

    return split


def pysbd_splitter() -> Splitter:
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)
    return _per_line(lambda line: list(segmenter.segment(line)) if line.strip() else [])


def syntok_splitter() -> Splitter:
    import syntok.segmenter as segmenter

    def split_line(line: str) -> list[str]:
        return ["".join(t.spacing + t.value for t in sentence)
                for paragraph in segmenter.process(line) for sentence in paragraph]

    return _per_line(split_line)


def _http_only(normalise: Callable[[str], str]) -> Canonical:
    def canonical(link: str, base: str | None = None) -> str | None:
        try:
            url = urljoin(base, link.strip()) if base else link.strip()
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                return None
            _ = parts.port
            url = normalise(url)
        except (ValueError, TypeError, AttributeError):
            return None
        return url if len(url) <= dedup.MAX_URL_LENGTH else None

    return canonical


def courlan_canonical() -> Canonical:
    import courlan

    def normalise(url: str) -> str:
        # normalize_url lower-cases, drops the default port, the fragment and its own list of
        # tracking parameters (and sorts the query); ours are dropped first.
        return str(courlan.normalize_url(_strip(url), strict=False, trailing_slash=True))

    return _http_only(normalise)


def w3lib_canonical() -> Canonical:
    from w3lib.url import canonicalize_url

    return _http_only(lambda url: canonicalize_url(_strip(url), keep_fragments=False))


def _strip(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(query=dedup._strip_tracking(parts.query)).geturl()


SPLITTERS: dict[str, Callable[[], Splitter]] = {
    "hand": lambda: passages.split_sentences, "pysbd": pysbd_splitter, "syntok": syntok_splitter,
}
CANONICALS: dict[str, Callable[[], Canonical]] = {
    "hand": lambda: dedup.canonical_url, "courlan": courlan_canonical, "w3lib": w3lib_canonical,
}


def swap(splitter: str | None, canonical: str | None) -> None:
    """Put the named candidates where the pipeline (and the tests' imports) will find them."""
    if splitter and splitter != "hand":
        passages.split_sentences = index.split_sentences = SPLITTERS[splitter]()  # type: ignore[assignment]
    if canonical and canonical != "hand":
        dedup.canonical_url = parse.canonical_url = CANONICALS[canonical]()  # type: ignore[assignment]


swap(os.environ.get("Q12_SPLITTER"), os.environ.get("Q12_CANONICAL"))


def _timed(function: Callable[[Any], Any], items: list[Any], rounds: int = 1) -> tuple[float, list[Any]]:
    best, out = float("inf"), []
    for _ in range(rounds):
        start = time.perf_counter()
        out = [function(item) for item in items]
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from precision_data import load_negatives

    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "feeds"
    articles = load_negatives(shared)
    texts = [text for _, text in articles if text.strip()]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    print(f"splitters on {len(texts)} corpus texts ({megabytes:.2f} MB):")
    hand = [passages.split_sentences(t) for t in texts]
    for name, make in SPLITTERS.items():
        seconds, out = _timed(make(), texts)
        same = sum(a == b for a, b in zip(out, hand, strict=True))
        counts = [len(s) for s in out]
        print(f"  {name:8} {seconds:7.3f} s  {megabytes / seconds:6.2f} MB/s  sentences {sum(counts):6d} "
              f"(median {statistics.median(counts):.0f}/text)  same as hand-written: {same}/{len(texts)}",
              flush=True)
    links = _corpus_links(shared)
    print(f"canonicalisers on {len(links)} corpus links:")
    hand_urls = [dedup.canonical_url(link, base) for link, base in links]
    for name, make in CANONICALS.items():
        function = make()
        seconds, out = _timed(lambda pair, f=function: f(*pair), links)
        same = sum(a == b for a, b in zip(out, hand_urls, strict=True))
        per_link = seconds * 1e6 / len(links)
        print(f"  {name:8} {per_link:7.1f} µs/link  same as hand-written: {same}/{len(links)}"
              f"  distinct keys {len(set(out))} (hand-written {len(set(hand_urls))})")


def _corpus_links(feeds: Path) -> list[tuple[str, str]]:
    import feedparser

    links = []
    for path in sorted(p for p in feeds.rglob("*") if p.is_file() and p.suffix != ".json"):
        base = f"http://news.test/{path.name}"
        for entry in feedparser.parse(path.read_bytes()).entries:
            if entry.get("link"):
                links.append((str(entry["link"]), base))
    return links


if __name__ == "__main__":
    main()
