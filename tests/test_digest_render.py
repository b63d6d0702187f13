"""The digest email built from hand-made digests, hostile feed text included."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from html.parser import HTMLParser

import pytest

from alerts.chart import chart_png
from alerts.digest import render_digest
from monitor.types import Digest, DigestArticle, DigestNarrative, FailingFeed

SCRIPT = "<script>alert(1)</script>"
HEADER_INJECTION = "\r\nBcc: evil@example.org"
DAYS = ("2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24")


def article(title: str, url: str | None, tier: str = "watch", score: float = 0.61) -> DigestArticle:
    return DigestArticle(
        title=title,
        url=url,
        outlet="Example <b>News</b>",
        published=datetime(2026, 11, 24, 13, 5, tzinfo=UTC),  # 14:05 in Berlin
        score=score,
        tier=tier,
        evidence=f"The labs are a weapons programme {SCRIPT}, the documents show.",
    )


BIO_LABS = DigestNarrative(
    narrative_id="bio-labs",
    title=f"Secret bio-labs {SCRIPT}",
    url="https://euvsdisinfo.eu/report/bio-labs",
    articles=5, outlets=3, alerts=2, previous_day=2, week_average=1.7, first_seen=True,
    top=(
        article(SCRIPT, "https://news.example.org/a?x=1&y=2", "alert", 0.8372),
        article(HEADER_INJECTION, "javascript:alert(1)"),
        article("Data URL", "data:text/html,<b>x</b>"),
    ),
)
CHIPS = DigestNarrative(
    narrative_id="chips", title="Vaccines contain microchips", url="ftp://example.org/chips",
    articles=2, outlets=2, alerts=0, previous_day=4, week_average=2.0, first_seen=False,
    top=(article("Chips everywhere", None),),
)
FEED = FailingFeed(
    feed_id="wire", name="The <i>Wire</i>", url="https://feeds.example.org/wire.xml",
    last_error=f"HTTP 503 {SCRIPT}", consecutive_errors=4,
    last_success=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
)
DIGEST = Digest(
    start=datetime(2026, 11, 23, 23, 0, tzinfo=UTC),  # Tuesday 24 November in Berlin
    end=datetime(2026, 11, 24, 23, 0, tzinfo=UTC),
    timezone="Europe/Berlin",
    narratives=(BIO_LABS, CHIPS),
    failing_feeds=(FEED,),
    days=DAYS,
    daily={BIO_LABS.title: (0, 1, 0, 2, 1, 2, 5), CHIPS.title: (3, 3, 2, 4, 1, 4, 2)},
)
EMPTY = replace(DIGEST, narratives=(), daily={})


class Page(HTMLParser):
    """Every tag and every href/src in an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("href", "src")]


def render(digest: Digest = DIGEST, subject: str = "Digest for 2026-11-24") -> EmailMessage:
    return render_digest(digest, subject=subject, sender="Monitor <monitor@example.org>",
                         recipients=["analysts@example.org", "Desk <desk@example.org>"])


def parts(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    if html.get_content_type() == "multipart/related":
        html = html.get_body(("html",))
        assert html is not None
    return str(plain.get_content()), str(html.get_content())


def test_structure_is_text_then_html_with_the_chart_inline() -> None:
    message = render()
    kinds = [part.get_content_type() for part in message.walk()]
    assert kinds == ["multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]
    image = next(part for part in message.walk() if part.get_content_type() == "image/png")
    cid = str(image["Content-ID"])
    assert cid.startswith("<") and cid.endswith("@example.org>")
    assert image.get_content_disposition() == "inline"
    assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"cid:{cid[1:-1]}" in Page(parts(message)[1]).links


def test_headers_come_from_configuration_only() -> None:
    message = render(subject="Digest" + HEADER_INJECTION)
    reparsed = message_from_bytes(message.as_bytes(), policy=default)
    assert reparsed["Subject"] == "Digest Bcc: evil@example.org"
    assert "Bcc" not in reparsed
    assert sorted(reparsed.keys()) == sorted(
        ["Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type"]
    )
    assert reparsed["Message-ID"].endswith("@example.org>")
    assert [a.addr_spec for a in reparsed["To"].addresses] == ["analysts@example.org", "desk@example.org"]


def test_a_malformed_address_is_refused() -> None:
    with pytest.raises(ValueError):
        render_digest(DIGEST, subject="s", sender="monitor@example.org\r\nBcc: evil@example.org",
                      recipients=["a@example.org"])
    with pytest.raises(ValueError):
        render_digest(DIGEST, subject="s", sender="monitor@example.org", recipients=["not an address"])


def test_html_escapes_feed_text() -> None:
    html = parts(render())[1]
    assert SCRIPT not in html and "<b>News" not in html and "<i>Wire" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "script" not in Page(html).tags
    assert "Bcc: evil@example.org" in html  # shown as text, on one line


def test_only_http_links() -> None:
    links = Page(parts(render())[1]).links
    assert all(link.startswith(("https://", "http://", "cid:")) for link in links), links
    assert "https://news.example.org/a?x=1&y=2" in links
    assert "https://euvsdisinfo.eu/report/bio-labs" in links
    text = parts(render())[0]
    assert "javascript:" not in text and "data:text" not in text and "ftp://" not in text


def test_header_summary_and_order() -> None:
    text, html = parts(render())
    for body in (text, html):
        assert "Tuesday 24 November 2026" in body
        assert "2 narratives, 7 articles, 2 alert-tier" in body
        assert body.index("Secret bio-labs") < body.index("Vaccines contain microchips")


def test_articles_show_time_score_tier_and_evidence() -> None:
    text, html = parts(render())
    assert "[ALERT 0.84] 14:05  Example <b>News</b>" in text
    assert "[watch 0.61] 14:05" in text
    assert ">ALERT</span>" in html and ">watch</span>" in html
    assert "14:05 &middot; score 0.84" in html
    assert "&ldquo;The labs are a weapons programme &lt;script&gt;" in html


def test_changes_against_previous_day_and_week() -> None:
    text, html = parts(render())
    assert "▲ +3 vs previous day (2)" in text
    assert "▲ +3.3 vs 7-day average (1.7)" in text
    assert "▼ -2 vs previous day (4)" in text
    assert "= ±0 vs 7-day average (2.0)" in text
    assert "▲&nbsp;+3</span> vs previous day (2)" in html


def test_new_narratives_are_badged_and_listed() -> None:
    text, html = parts(render())
    assert "Secret bio-labs <script>alert(1)</script>  [NEW]" in text
    assert html.count(">NEW</span>") == 1
    first_seen = text.split("NARRATIVES SEEN FOR THE FIRST TIME")[1].split("FAILING FEEDS")[0]
    assert "Secret bio-labs" in first_seen and "microchips" not in first_seen


def test_failing_feeds_listed() -> None:
    text, html = parts(render())
    assert "The <i>Wire</i> (wire)" in text
    assert "https://feeds.example.org/wire.xml" in text
    assert "4 consecutive errors, last success: Sunday 22 November 2026 09:00" in text
    assert "Last error: HTTP 503 <script>alert(1)</script>" in text
    assert "The &lt;i&gt;Wire&lt;/i&gt;" in html and "Last error: HTTP 503 &lt;script&gt;" in html


def test_empty_digest_says_nothing_matched_and_still_lists_feeds() -> None:
    text, html = parts(render(EMPTY))
    nothing = ("Nothing matched between Tuesday 24 November 2026 00:00 and "
               "Wednesday 25 November 2026 00:00 (Europe/Berlin).")
    assert nothing in html
    assert " ".join(text.split()).count(nothing) == 1
    assert "The <i>Wire</i> (wire)" in text and "The &lt;i&gt;Wire&lt;/i&gt;" in html
    assert "FIRST TIME" not in text


def test_no_failing_feeds() -> None:
    text, html = parts(render(replace(DIGEST, failing_feeds=())))
    assert "No feed is failing." in text and "No feed is failing." in html


def test_plain_text_fits_80_columns() -> None:
    long = replace(BIO_LABS, title="word " * 100, top=(article("x" * 500, None),))
    text = parts(render(replace(DIGEST, narratives=(long, CHIPS))))[0]
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert all(line.strip().startswith("https://") for line in wide), wide


def png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def test_chart_is_a_small_png() -> None:
    png = chart_png(DIGEST)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png_size(png) == (600, 260)
    assert 2_000 < len(png) < 100_000
    assert chart_png(DIGEST) == png


def test_chart_without_matches() -> None:
    for digest in (EMPTY, replace(DIGEST, daily={"x": (0,) * 7}), replace(DIGEST, days=(), daily={})):
        png = chart_png(digest)
        assert png.startswith(b"\x89PNG") and png_size(png) == (600, 100)


def test_chart_takes_any_title() -> None:
    daily = {f"${i} \\frac{{ {SCRIPT} 中文 " + "long " * 20: (i, 1, 2) for i in range(10)}
    png = chart_png(replace(DIGEST, daily=daily))  # series shorter than days are padded
    assert png_size(png) == (600, 260)


def test_chart_from_many_threads_at_once() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        charts = set(pool.map(lambda _: chart_png(DIGEST), range(8)))
    assert charts == {chart_png(DIGEST)}
