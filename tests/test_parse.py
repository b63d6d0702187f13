"""parse_feed over the fixture documents in tests/data/feeds (each states its expectation)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.ingest.dedup import content_hash, guid_hash
from monitor.ingest.parse import parse_feed
from monitor.types import Article, Feed, FetchResult, ParsedFeed

from corpus import CORPUS, expected_guids

FEEDS = Path(__file__).parent / "data" / "feeds"
FETCHED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def fetch_result(
    body: bytes,
    url: str,
    headers: Mapping[str, str] | None = None,
    fetched: datetime | None = FETCHED,
) -> FetchResult:
    headers = headers or {}
    return FetchResult(url, 200, body, headers, etag=None, last_modified=None, fetched_at=fetched)


def parse(
    name: str, url: str, headers: Mapping[str, str] | None = None, language: str | None = None
) -> ParsedFeed:
    doc = fetch_result((FEEDS / name).read_bytes(), url, headers)
    return parse_feed(doc, Feed(id="test-feed", url=url, language=language))


def by_guid(parsed: ParsedFeed) -> dict[str, Article]:
    return {article.guid: article for article in parsed.articles}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- formats -------------------------------------------------------------------------


def test_rss20_articles() -> None:
    parsed = parse("rss20_en.xml", "https://news.example.com/world/rss.xml")
    assert parsed.title == "Harbour Gazette – World"
    # solar-farm's 2099 is more than a day ahead: fetch time, and counted (issue 13)
    assert parsed.warning == "1 item(s) with an unreadable or out-of-range date: fetch time used"
    assert [a.guid for a in parsed.articles] == [
        "harbour-strike-20250227",
        "grain-corridor-20250226",
        "https://news.example.com/world/2025/02/solar-farm.html",
        "brief-0931",
        "https://news.example.com/world/2025/02/gallery-storm.html",
    ]
    strike, grain, solar, brief, gallery = parsed.articles
    assert strike.feed_id == "test-feed"
    assert strike.guid_hash == guid_hash("harbour-strike-20250227")
    assert strike.url == "https://news.example.com/world/2025/02/harbour-strike.html?page=2"
    assert strike.title == "Dock workers & port authority agree to end strike"
    assert strike.text == (
        "After nine days, the dockers’ union and the port authority signed a deal on Thursday."
        "\n\nShips queued outside the harbour will be unloaded first & fast."
    )
    assert strike.author == "Maria Okafor"
    assert strike.language == "en-gb"
    assert strike.published == utc(2025, 2, 27, 9, 15)
    assert strike.fetched == FETCHED
    assert strike.content_hash == content_hash(strike.title, strike.text)

    assert grain.url == "https://news.example.com/world/2025/02/grain-corridor.html?id=7"
    assert grain.text == (
        "Cargo ships left the port on Wednesday evening.\n\n12 vessels\n480,000 tonnes of wheat"
        "\n\nInsurers said premiums would stay high."
    )
    assert grain.author == "Tomasz Wiśniewski"

    assert solar.published == FETCHED  # dated 2099

    assert brief.url is None
    assert (
        brief.title
        == brief.text
        == (
            "Flights from the northern airport resumed at dawn after fog cleared, "
            "the operator said in a statement on its website."
        )
    )

    assert gallery.title == "(untitled)"
    assert gallery.text == ""


def test_rss10_rdf() -> None:
    parsed = parse("rss10_uk.rdf", "https://visti.example.ua/rss")
    assert parsed.title == "Вісті Полісся"
    first, second = parsed.articles
    assert first.guid == "https://visti.example.ua/news/1201"
    assert first.title == "У Житомирі відкрили новий міст через Тетерів"
    assert first.language == "uk"
    assert first.published == utc(2025, 2, 20, 12, 30)
    assert second.url == "https://visti.example.ua/news/1200"
    assert second.text == "Цього року площа під льоном зросте на 15 %."


def test_atom10() -> None:
    parsed = parse("atom10_fr.xml", "https://actu.example.fr/flux/atom.xml")
    assert parsed.title == "Actu Régions"
    vendanges, ferry, greve = parsed.articles
    assert vendanges.guid == "urn:uuid:5f1c2e0a-7d43-4c1b-9a52-0a7e3c9b1e01"
    assert vendanges.url == "https://actu.example.fr/flux/2025/02/vendanges.html"
    assert vendanges.text == (
        "Les viticulteurs ont récolté 20 % de plus que l’an dernier.\n\nLes prix devraient baisser."
    )
    assert vendanges.author == "Claire Dubois"
    assert vendanges.language == "fr"
    assert vendanges.published == utc(2025, 2, 27, 15, 0)

    # type="text" is plain text: what looks like markup or an entity stays as written.
    assert ferry.title == "Fact check: 1 < 2 rule &amp; the ferry timetable"
    assert ferry.text == 'The notice read "1 < 2 &amp; 3".\nSecond line stays a second line.'
    assert ferry.language == "en-gb"

    assert greve.text == "Le trafic reprend normalement demain."
    assert greve.published == utc(2025, 2, 25, 20, 5)


def test_atom03() -> None:
    parsed = parse("atom03_es.xml", "https://diario.example.es/atom.xml")
    metro, lluvias = parsed.articles
    assert metro.guid == "tag:diario.example.es,2025:metro-sevilla"
    assert metro.text == "La línea 3 conecta el norte con el centro en 18 minutos."
    assert metro.author == "Lucía Fernández"
    assert metro.language == "es"
    assert metro.published == utc(2025, 2, 27, 9, 0)
    assert lluvias.text == "Se esperan hasta 60 litros por metro cuadrado."


def test_json_feed() -> None:
    parsed = parse("jsonfeed11_pl.json", "https://kurier.example.pl/feed.json")
    assert parsed.title == "Kurier Bałtycki"
    assert parsed.warning is None
    articles = by_guid(parsed)
    assert list(articles) == ["kb-2025-0412", "413", "kb-2025-0414", "kb-2025-0415"]

    terminal = articles["kb-2025-0412"]
    assert terminal.title == "Gdańsk: nowy terminal promowy otwarty"  # not the duplicate's
    assert terminal.url == "https://kurier.example.pl/gdansk/nowy-terminal?ref=home"
    assert terminal.text == "Terminal obsłuży do 4 mln pasażerów rocznie."
    assert terminal.author == "Anna Kowalska, Piotr Nowak"
    assert terminal.language == "pl-pl"
    assert terminal.published == utc(2025, 2, 27, 7, 30)

    bridge = articles["413"]
    assert bridge.url == "https://kurier.example.pl/szczecin/most"  # external_url, relative
    assert bridge.text == "Most otwarto po remoncie.\n\nKierowcy muszą liczyć się z utrudnieniami."
    assert bridge.author == "Redakcja"  # the feed's authors
    assert bridge.language == "de"

    pier = articles["kb-2025-0414"]
    assert pier.text == "Wstęp na molo będzie bezpłatny do końca marca."
    assert pier.published == utc(2025, 2, 25, 11, 0)  # date_modified

    assert articles["kb-2025-0415"].published == FETCHED  # "not a date"


# --- encodings -----------------------------------------------------------------------

RU_TITLES = [
    "В Казани открыли новую станцию метро «Суконная слобода»",
    "Синоптики обещают оттепель в Поволжье",
]


def test_windows_1251_from_the_xml_declaration() -> None:
    assert (FEEDS / "rss_cp1251_ru.xml").read_bytes().decode("cp1251")  # really cp1251
    parsed = parse("rss_cp1251_ru.xml", "https://vesti.example.ru/rss")
    assert parsed.title == "Вести Поволжья"
    assert [a.title for a in parsed.articles] == RU_TITLES
    assert parsed.articles[1].text == "Температура поднимется до +3 °C — впервые с декабря."
    assert {a.language for a in parsed.articles} == {"ru"}
    assert parsed.warning is None


def test_windows_1251_from_the_http_header_only() -> None:
    url = "https://vesti.example.ru/rss"
    parsed = parse(
        "rss_cp1251_header_only_ru.xml", url, {"Content-Type": "text/xml; charset=windows-1251"}
    )
    assert [a.title for a in parsed.articles] == RU_TITLES
    assert parsed.articles[0].text == "Пассажиропоток составит 40 тысяч человек в сутки."
    # Without the header nothing says cp1251: the text cannot come out right.
    guessed = parse("rss_cp1251_header_only_ru.xml", url)
    assert [a.title for a in guessed.articles] != RU_TITLES


def test_same_text_under_different_urls_has_the_same_content_hash() -> None:
    declared = parse("rss_cp1251_ru.xml", "https://vesti.example.ru/rss")
    header = parse(
        "rss_cp1251_header_only_ru.xml",
        "https://mirror.example.ru/rss",
        {"content-type": "application/rss+xml; charset=cp1251"},
    )
    assert [a.url for a in declared.articles] != [a.url for a in header.articles]
    assert [a.content_hash for a in declared.articles] == [a.content_hash for a in header.articles]


def test_iso_8859_1() -> None:
    parsed = parse(
        "rss_latin1_de.xml", "https://lokal.example.de/rss", {"Content-Type": "text/xml"}
    )
    assert parsed.title == "Süddeutsche Lokalnachrichten"
    tram, bakery = parsed.articles
    assert tram.title == "Straßenbahn über die Isarbrücke fährt wieder"
    assert bakery.title == "Bäckerei-Kette schließt fünf Filialen"
    assert bakery.text == "Betroffen sind Filialen in Giesing und Haidhausen «bis auf Weiteres»."
    assert bakery.url == "https://lokal.example.de/wirtschaft/baeckerei"
    assert tram.language == "de-de"
    assert parsed.warning is None  # text/xml without charset: the declaration decides


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/atom+xml; charset=latin1"}])
def test_utf16_with_bom(headers: dict[str, str]) -> None:
    assert (FEEDS / "atom_utf16_el.xml").read_bytes()[:2] == b"\xff\xfe"
    parsed = parse("atom_utf16_el.xml", "https://nea.example.gr/atom", headers)
    assert parsed.title == "Νέα της Θεσσαλονίκης"
    (article,) = parsed.articles
    assert article.title == "Το μετρό της Θεσσαλονίκης μεταφέρει 100.000 επιβάτες την ημέρα"
    assert article.language == "el"
    assert article.published == utc(2025, 2, 27, 7, 0)


def test_utf8_bom_and_mislabelled_text_xml() -> None:
    body = b"\xef\xbb\xbf" + (FEEDS / "rss10_uk.rdf").read_bytes()
    doc = fetch_result(body, "https://visti.example.ua/rss", {"content-type": "text/xml"})
    parsed = parse_feed(doc, Feed(id="f", url=doc.url))
    assert parsed.articles[0].title == "У Житомирі відкрили новий міст через Тетерів"
    assert parsed.warning is None


# --- ill-formed documents ------------------------------------------------------------


def test_malformed_xml_with_entries_is_accepted_with_a_warning() -> None:
    parsed = parse("malformed_rss.xml", "https://courier.example.com/rss")
    assert [a.guid for a in parsed.articles] == ["courier-5521", "courier-5522"]
    assert parsed.articles[0].title == "Floods close roads between Ashford & Milltown"
    assert parsed.articles[1].text == "Opening hours are unchanged."
    assert parsed.warning is not None
    assert "not well-formed" in parsed.warning


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/html; charset=utf-8"}])
def test_html_page_is_not_a_feed(headers: dict[str, str]) -> None:
    with pytest.raises(ParseError) as raised:
        parse("not_a_feed.html", "https://news.example.com/", headers)
    assert raised.value.url == "https://news.example.com/"
    assert raised.value.reason == "not a feed: looks like HTML"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty document"),
        (b"  \n ", "empty document"),
        (b"Service temporarily unavailable", "not a feed"),
        (b'{"data": [1, 2, 3]}', "not a feed: JSON but not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not a feed: invalid JSON"),
    ],
)
def test_documents_without_a_feed_raise_parse_error(body: bytes, reason: str) -> None:
    doc = fetch_result(body, "https://example.com/feed")
    with pytest.raises(ParseError) as raised:
        parse_feed(doc, Feed(id="f", url=doc.url))
    assert raised.value.reason.startswith(reason)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet</title></feed>',
        b'{"version": "https://jsonfeed.org/version/1", "title": "Quiet", "items": []}',
    ],
)
def test_a_feed_without_entries_is_fine(body: bytes) -> None:
    doc = fetch_result(body, "https://example.com/feed")
    parsed = parse_feed(doc, Feed(id="f", url=doc.url))
    assert parsed == ParsedFeed(title="Quiet", articles=(), warning=None)


# --- identity, dates, language -------------------------------------------------------


def test_entries_without_guid_get_stable_guids() -> None:
    first = parse("noguid_rss.xml", "https://townhall.example.org/rss")
    again = parse("noguid_rss.xml", "https://townhall.example.org/rss")
    assert [a.guid for a in first.articles] == [
        "https://townhall.example.org/notices/cycle-lane",
        "title:water supply interrupted in the old town|Tue, 25 Feb 2025 12:00:00 GMT",
        "title:recycling centre closed on monday",
        "title:public consultation on the new bus timetable opens next week.",
    ]
    assert first == again


def test_guids_do_not_depend_on_the_feed_url() -> None:
    # A permalink guid that is not a URL ("courier-5521") must not be resolved against the
    # feed URL, or moving the feed to https would make every article new again.
    old = parse("malformed_rss.xml", "http://courier.example.com/rss")
    new = parse(
        "malformed_rss.xml",
        "https://www.courier.example.com/feed",
        {"Content-Location": "https://cdn.example.net/courier.xml"},
    )
    assert [a.guid for a in old.articles] == [a.guid for a in new.articles]


def test_published_in_the_future_becomes_fetched_within_tolerance() -> None:
    def item(minutes: int) -> str:
        date = f"{FETCHED + timedelta(minutes=minutes):%a, %d %b %Y %H:%M:%S} GMT"
        return f"<item><guid>g{minutes}</guid><title>t</title><pubDate>{date}</pubDate></item>"

    body = f'<rss version="2.0"><channel>{item(9)}{item(11)}{item(-60)}</channel></rss>'
    doc = fetch_result(body.encode(), "https://example.com/feed")
    published = [a.published for a in parse_feed(doc, Feed(id="f", url=doc.url)).articles]
    assert published == [FETCHED + timedelta(minutes=9), FETCHED, FETCHED - timedelta(hours=1)]


@pytest.mark.parametrize(
    ("fetched_at", "expected"),
    [
        (datetime(2025, 3, 1, 12, 0), FETCHED),  # naive: taken as UTC
        (datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), FETCHED),
    ],
)
def test_fetched_is_aware_utc(fetched_at: datetime, expected: datetime) -> None:
    body = b'<rss version="2.0"><channel><item><title>t</title></item></channel></rss>'
    doc = fetch_result(body, "https://example.com/feed", fetched=fetched_at)
    (article,) = parse_feed(doc, Feed(id="f", url=doc.url)).articles
    assert article.fetched == expected
    assert article.fetched.utcoffset() == timedelta(0)
    assert article.published == article.fetched  # the entry has no date


def test_fetched_defaults_to_now() -> None:
    body = b'<rss version="2.0"><channel><item><title>t</title></item></channel></rss>'
    before = datetime.now(UTC)
    doc = fetch_result(body, "https://example.com/feed", fetched=None)
    (article,) = parse_feed(doc, Feed(id="f", url=doc.url)).articles
    assert before <= article.fetched <= datetime.now(UTC)
    assert article.fetched.tzinfo == UTC


def test_configured_language_wins() -> None:
    parsed = parse("rss20_en.xml", "https://news.example.com/world/rss.xml", language="EN")
    assert {a.language for a in parsed.articles} == {"en"}


def test_no_language_anywhere_is_none() -> None:
    parsed = parse("malformed_rss.xml", "https://courier.example.com/rss")
    assert {a.language for a in parsed.articles} == {None}


def test_link_only_entries_do_not_share_a_content_hash() -> None:
    body = b"""<rss version="2.0"><channel>
        <item><link>https://example.com/photo/1</link></item>
        <item><link>https://example.com/photo/2</link></item></channel></rss>"""
    doc = fetch_result(body, "https://example.com/feed")
    one, two = parse_feed(doc, Feed(id="f", url=doc.url)).articles
    assert one.title == two.title == "(untitled)"
    assert one.content_hash != two.content_hash


def test_long_text_gives_a_title_cut_at_a_word() -> None:
    text = "word " * 60
    item = f"<item><description>{text}</description></item>"
    body = f'<rss version="2.0"><channel>{item}</channel></rss>'
    doc = fetch_result(body.encode(), "https://example.com/feed")
    (article,) = parse_feed(doc, Feed(id="f", url=doc.url)).articles
    assert article.title == " ".join(["word"] * 24)  # 119 characters
    assert article.text == text.strip()


# --- the shared corpus ---------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} is absent")
@pytest.mark.parametrize(
    "path",
    sorted(
        path.relative_to(CORPUS)
        for folder in ("miniflux-testdata", "feeder-captures")
        for path in (CORPUS / folder).rglob("*")
        if path.is_file()
    )
    if CORPUS.is_dir()
    else [],
    ids=str,
)
def test_corpus_document(path: Path) -> None:
    body, url = (CORPUS / path).read_bytes(), "https://example.org/feed"
    # Entries that share a guid count once, as parse_feed keeps the first of them.
    expected = expected_guids(body, url)
    try:
        parsed = parse_feed(fetch_result(body, url), Feed(id="corpus", url=url))
    except ParseError:
        assert not expected, "a document with entries was refused"
        return
    guids = [article.guid for article in parsed.articles]
    assert len(guids) == len(set(guids))
    # Every entry with a title or link became an article. parse_feed may also keep
    # entries with text only, so the expected guids are a subset, not the whole.
    assert expected <= set(guids)
