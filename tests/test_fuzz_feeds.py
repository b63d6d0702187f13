"""Hundreds of generated hostile feed documents and headers, polled as a user polls them.

Every document (RSS, Atom or JSON Feed, fixed seed) carries a few well-formed items beside
hostile ones: random control characters (NUL included), absurd dates (9999-12-31, year 0),
wrong or exotic encodings (UTF-16, a mislabelled charset), big and deeply nested content, and
answers with non-ASCII ETag and Last-Modified headers. `monitor poll --once` runs twice (the
second sends the stored validators back) and `monitor run` polls them while its config grows.

What must hold: no feed ends in an internal error (a parse error of a hopeless document is
fine), every well-formed item of a usable document is stored, and `monitor run` stays up and
stops cleanly on SIGTERM.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import text

from storage.db import open_engine

from feedserver import FeedServer, Response

SEED = 1313
DOCUMENTS = 240
NOW = datetime.now(UTC).replace(microsecond=0)

# What a recorded error must never look like: a crash, the database's words, a Python name.
_PYTHON_ERRORS = {name for name, value in vars(builtins).items()
                  if isinstance(value, type) and issubclass(value, BaseException)}
_INTERNAL = re.compile(
    r"internal error|storage error|Traceback|savepoint|psycopg|sqlalchemy|"
    + "|".join(rf"\b{re.escape(name)}\b" for name in sorted(_PYTHON_ERRORS)), re.IGNORECASE)

# Hostile text: C0 (NUL included), DEL, C1, bidi controls, line separators, a BOM, surrogates.
_CONTROLS = [chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]]
_ODD = ["\u202e", "\u2066", "\u200f", "\u2028", "\ufeff", "\uffff", "\U0010ffff", "&", "<", "]]>", "\\"]
_DATES = ["9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "10000-01-01T00:00:00Z",
          "-0001-01-01T00:00:00Z", "2024-02-30T25:61:61Z", "1970-01-01T00:00:00+99:99", "", "yesterday",
          "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0000 00:00:00 +0000", "Sat, 32 Foo 2024 99:99 XYZ",
          "1e308", "99999999999999999999", "2024-06-01T12:00:00.123456789123Z", "\x00"]
_ETAGS = ['"caf\xe9"', 'W/"\xff\xfe"', '"\x80\x9b"', '"ok"', '"' + "x" * 3000 + '"', '"a b"']
_LAST_MODIFIED = ["Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0000 00:00:00 GMT", "gar\xe9bage",
                  "Thu, 01 Jan 1970 00:00:00 GMT", "\xa0"]


@dataclass
class Document:
    """One generated feed: its answer, the guids of its well-formed items, what may fail."""

    path: str
    response: Response
    good: list[str] = field(default_factory=list)
    hopeless: str = ""  # why a parse or fetch error is acceptable; "" means it must work


def hostile_text(rng: random.Random, size: int = 40) -> str:
    pool = _CONTROLS + _ODD + list("abc xyz 123 Кириллица")
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, size)))


def good_item(doc: int, k: int) -> dict[str, str]:
    when = NOW - timedelta(hours=k + 1)
    return {"guid": f"good-{doc}-{k}", "url": f"https://fuzz.example/{doc}/good/{k}",
            "title": f"Well-formed item {k} of document {doc}",
            "text": f"Document {doc} item {k}: an ordinary sentence about the weather {doc * 31 + k}.",
            "date": when.isoformat(), "rfc822": format_datetime(when)}


def hostile_item(rng: random.Random, doc: int, k: int) -> dict[str, Any]:
    """An item with random control characters, a bad date, sometimes big or deeply nested."""
    url = f"https://fuzz.example/{doc}/bad/{k}"
    item: dict[str, Any] = {
        "guid": rng.choice([f"bad-{doc}-{k}", f"bad-{doc}-{k}{hostile_text(rng, 8)}", ""]),
        "url": rng.choice([url, f"{url}?q={hostile_text(rng, 5)}", "javascript:alert(1)", hostile_text(rng)]),
        "title": hostile_text(rng),
        "text": hostile_text(rng, 200),
        "date": rng.choice(_DATES),
        "depth": 0,
    }
    if rng.random() < 0.01:
        item["text"] = "big " * rng.randint(100_000, 300_000)  # 0.4-1.2 MB
    if rng.random() < 0.15:
        item["depth"] = rng.choice([50, 300, 600])  # JSON deeper than ~900 levels: see generate()
    return item


def _xml(value: str) -> str:
    """Text for an XML document: escaped, but with its control characters left raw."""
    return escape(value.replace("\ud800", ""))


def _nested_xml(depth: int) -> str:
    return "<x:n>" * depth + "deep" + "</x:n>" * depth


def rss(doc: int, goods: list[dict[str, str]], bads: list[dict[str, Any]]) -> str:
    items = [f"<item><guid>{g['guid']}</guid><link>{g['url']}</link><title>{g['title']}</title>"
             f"<description>{g['text']}</description><pubDate>{g['rfc822']}</pubDate></item>" for g in goods]
    items += [f"<item><guid>{_xml(b['guid'])}</guid><link>{_xml(b['url'])}</link><title>{_xml(b['title'])}"
              f"</title><description><![CDATA[{b['text']}]]></description><pubDate>{_xml(b['date'])}</pubDate>"
              f"{_nested_xml(b['depth'])}</item>" for b in bads]
    return (f'<rss version="2.0" xmlns:x="urn:x"><channel><title>Fuzz {doc}</title>'
            f"<link>https://fuzz.example/{doc}</link>{''.join(items)}</channel></rss>")


def atom(doc: int, goods: list[dict[str, str]], bads: list[dict[str, Any]]) -> str:
    entries = [f"<entry><id>{g['guid']}</id><link href=\"{g['url']}\"/><title>{g['title']}</title>"
               f"<summary>{g['text']}</summary><updated>{g['date']}</updated></entry>" for g in goods]
    entries += [f"<entry><id>{_xml(b['guid'])}</id><link href=\"{_xml(b['url'])}\"/>"
                f"<title>{_xml(b['title'])}</title><content type=\"html\">{_xml(b['text'])}</content>"
                f"<updated>{_xml(b['date'])}</updated><published>{_xml(b['date'])}</published>"
                f"{_nested_xml(b['depth'])}</entry>" for b in bads]
    return (f'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:x="urn:x"><title>Fuzz {doc}</title>'
            f"<id>urn:fuzz:{doc}</id><updated>{NOW.isoformat()}</updated>{''.join(entries)}</feed>")


def _nested_json(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"n": value}
    return value


def json_feed(rng: random.Random, doc: int, goods: list[dict[str, str]], bads: list[dict[str, Any]]) -> str:
    items: list[Any] = [{"id": g["guid"], "url": g["url"], "title": g["title"], "content_text": g["text"],
                         "date_published": g["date"]} for g in goods]
    for b in bads:
        item = {"id": b["guid"], "url": b["url"], "title": b["title"], "content_html": b["text"],
                "date_published": b["date"], "_x": _nested_json(b["depth"])}
        odd = rng.choice(["id", "title", "url", "date_published", "authors", "tags", None])
        if odd:  # a field of the wrong type
            item[odd] = rng.choice([12345, 1e308, -1, None, [], {}, ["x"], {"a": 1}, True])
        items.append(item)
    if rng.random() < 0.2:
        items += [None, "item", 42, [1, 2]]
    rng.shuffle(items)
    data = {"version": "https://jsonfeed.org/version/1.1", "title": f"Fuzz {doc}", "items": items}
    return json.dumps(data, ensure_ascii=rng.random() < 0.5)


def encode(rng: random.Random, body: str, kind: str) -> tuple[bytes, str, str]:
    """The body in some encoding; its Content-Type; why failing to read it is fine ('' if not)."""
    mime = {"rss": "application/rss+xml", "atom": "application/atom+xml"}.get(kind, "application/feed+json")
    choice = rng.choice(["utf-8", "utf-8", "none", "utf-16-bom", "latin-1", "cp1251", "mislabelled", "junk"])
    if kind == "json" and choice in ("utf-16-bom", "latin-1", "cp1251"):
        # RFC 8259: JSON between systems MUST be UTF-8; reading it anyway is a bonus, not a duty.
        data = body.encode("utf-16") if choice == "utf-16-bom" else body.encode(choice, errors="replace")
        return data, f"{mime}; charset={choice}", "JSON that is not UTF-8"
    if choice == "utf-16-bom":
        return body.encode("utf-16"), mime, ""  # the BOM tells
    if choice in ("latin-1", "cp1251"):  # declared honestly; what the encoding lacks becomes '?'
        return body.encode(choice, errors="replace"), f"{mime}; charset={choice}", ""
    if choice == "mislabelled":  # UTF-8 bytes declared as UTF-16: a reader can only guess
        return body.encode("utf-8", "surrogatepass"), f"{mime}; charset=utf-16", "mislabelled charset"
    if choice == "junk":  # an unknown charset: the document's own declaration, else UTF-8
        return body.encode("utf-8", "surrogatepass"), f"{mime}; charset=\xe9bogus", ""
    content_type = mime if choice == "none" else f"{mime}; charset=utf-8"
    return body.encode("utf-8", "surrogatepass"), content_type, ""


def headers(rng: random.Random, content_type: str) -> dict[str, str]:
    answer = {"Content-Type": content_type}
    if rng.random() < 0.6:
        answer["ETag"] = rng.choice(_ETAGS)
    if rng.random() < 0.6:
        answer["Last-Modified"] = rng.choice(_LAST_MODIFIED)
    if rng.random() < 0.2:
        answer["Content-Language"] = rng.choice(["\xe9\xe9", "x" * 500, "en-US, \xff"])
    if rng.random() < 0.1:
        answer["Retry-After"] = rng.choice(["-1", "99999999999999999999", "\xe9"])
    return answer


def generate(count: int = DOCUMENTS, seed: int = SEED) -> list[Document]:
    rng = random.Random(seed)
    documents = []
    for n in range(count):
        kind = rng.choice(["rss", "atom", "json"])
        goods = [good_item(n, k) for k in range(rng.randint(1, 3))]
        bads = [hostile_item(rng, n, k) for k in range(rng.randint(1, 6))]
        if kind == "json":
            body = json_feed(rng, n, goods, bads)
        else:
            body = (rss if kind == "rss" else atom)(n, goods, bads)
        if kind != "json" and rng.random() < 0.3:
            body = '<?xml version="1.0" encoding="utf-8"?>\n' + body
        data, content_type, hopeless = encode(rng, body, kind)
        answer = headers(rng, content_type)
        if rng.random() < 0.03:  # a byte HTTP forbids in a header: the client may refuse the answer
            answer["X-Junk"] = "a\x01b"
            hopeless = hopeless or "control byte in a header"
        document = Document(f"/fuzz/{n}.{kind}", Response(200, data, answer), [g["guid"] for g in goods],
                            hopeless)
        documents.append(document)
    # A few that no reader can use, to check that their errors are the documented kind.
    documents.append(Document("/fuzz/nested.json", Response(200, b'{"version": "https://jsonfeed.org/'
                     b'version/1.1", "items": [' + b"[" * 200_000 + b"]" * 200_000 + b"]}"),
                     hopeless="nested too deeply"))
    documents.append(Document("/fuzz/nul.xml", Response(200, b"\x00" * 5000), hopeless="only NULs"))
    documents.append(Document("/fuzz/empty.xml", Response(200, b""), hopeless="empty"))
    return documents


# Running the monitor


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    return {**env, "MONITOR_DATABASE_URL": database_url, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def write_config(path: Path, server: FeedServer, documents: list[Document]) -> None:
    feeds = "".join(f'\n[feeds.f{n}]\nurl = "{server.url(d.path)}"\n' for n, d in enumerate(documents))
    path.write_text(f"""
[monitor]
per_host_delay = "0s"
per_host_concurrency = 16
max_concurrency = 16
reload_interval = "300ms"
metrics_port = 0
poll_interval = "1h"

[matching]
model = "hashing"
starter_narratives = false
embed_interval = "1s"
{feeds}""", encoding="utf-8")


def monitor(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli.main", "--config", str(config), *args],
                          env=env, capture_output=True, text=True, errors="replace", timeout=300)


def check_feeds(config: Path, env: dict[str, str], documents: list[Document], database_url: str) -> None:
    """No internal error anywhere; every well-formed item of a usable document stored."""
    listed = monitor(config, env, "feeds", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    reports = {r["id"]: r for r in json.loads(listed.stdout)}
    engine = open_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT feed_id, guid FROM articles"))
            stored = {(feed_id, guid) for feed_id, guid in rows}
    finally:
        engine.dispose()
    problems = []
    for n, document in enumerate(documents):
        report = reports[f"f{n}"]
        error = report["last_error"] or ""
        if _INTERNAL.search(error):
            problems.append(f"{document.path}: internal error recorded: {error}")
        elif report["status"] != "ok" and not document.hopeless:
            problems.append(f"{document.path}: {report['status']}: {error}")
        missing = [g for g in document.good if (f"f{n}", g) not in stored]
        if missing and (report["status"] == "ok" or not document.hopeless):
            problems.append(f"{document.path}: well-formed items not stored: {missing}")
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problem(s))"


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return generate()


@pytest.fixture
def hostile(feed_server: FeedServer, documents: list[Document], tmp_path: Path) -> Path:
    for document in documents:
        feed_server.route(document.path, document.response)
    config = tmp_path / "feeds.toml"
    write_config(config, feed_server, documents)
    return config


def test_poll_once_survives_hostile_feeds(
    hostile: Path, documents: list[Document], database_url: str
) -> None:
    env = environment(database_url)
    for _ in range(2):  # the second poll sends the stored ETag and Last-Modified back
        done = monitor(hostile, env, "poll", "--once")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr and "poll crashed" not in done.stderr, done.stderr[-3000:]
        assert f"Polled {len(documents)} feed(s)" in done.stdout
        check_feeds(hostile, env, documents, database_url)


def test_run_stays_up_on_hostile_feeds(
    hostile: Path, documents: list[Document], database_url: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    """`monitor run` polls the first half, then the rest as the config grows, and stops on SIGTERM."""
    half = len(documents) // 2
    write_config(hostile, feed_server, documents[:half])
    log = tmp_path / "run.log"  # a file, not a pipe: a full pipe would stall the monitor's logging
    with log.open("w") as sink:
        command = [sys.executable, "-m", "monitor.cli.main", "--config", str(hostile), "run"]
        env = environment(database_url)
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            problem = _wait_for_polls(process, feed_server, documents, half, hostile)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log.read_text(encoding="utf-8", errors="replace")
    assert not problem, f"{problem}\n{output[-3000:]}"
    assert process.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "poll crashed" not in output, output[-3000:]


def _wait_for_polls(
    process: subprocess.Popen[bytes], server: FeedServer, documents: list[Document], half: int, config: Path
) -> str:
    """Wait until the first `half` documents, then (after a live edit adds them) all, were fetched."""
    for wanted in (documents[:half], documents):
        if len(wanted) > half:
            write_config(config, server, wanted)
        deadline = time.monotonic() + 90
        while missing := [d.path for d in wanted if not server.requests_to(d.path)]:
            if process.poll() is not None:
                return f"monitor run exited with {process.returncode}"
            if time.monotonic() > deadline:
                return f"{len(missing)} feed(s) never polled: {missing[:10]}"
            time.sleep(0.2)
    time.sleep(3)  # a matching pass and a few reloads
    return "" if process.poll() is None else f"monitor run exited with {process.returncode}"
