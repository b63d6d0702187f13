"""Identity keys: canonical URL, guid hash, content hash, fallback guid."""

from __future__ import annotations

import pytest

from monitor.ingest.dedup import canonical_url, content_hash, entry_guid, guid_hash


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://example.com/a", "https://example.com/a"),
        ("HTTPS://News.Example.COM/Path/Case", "https://news.example.com/Path/Case"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com?x=1", "https://example.com/?x=1"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("  https://example.com/a \n", "https://example.com/a"),
        ("http://[2001:DB8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
        ("https://user:Secret@Example.com/a", "https://user:Secret@example.com/a"),
    ],
)
def test_canonical_url_normalises_scheme_host_port_path_fragment(link: str, expected: str) -> None:
    assert canonical_url(link) == expected


def test_canonical_url_drops_tracking_parameters_keeping_the_rest_in_order() -> None:
    link = (
        "https://example.com/story?b=2&utm_source=rss&a=1&UTM_Medium=x&fbclid=F"
        "&gclid=G&dclid=D&msclkid=M&mc_cid=C&mc_eid=E&yclid=Y&_ga=1.2&igshid=I"
        "&ref_src=twsrc&cmpid=c&ocid=o&at_medium=m&at_campaign=c&FBCLID=up&q=a+b%20c&empty="
    )
    assert canonical_url(link) == "https://example.com/story?b=2&a=1&q=a+b%20c&empty="


def test_canonical_url_drops_a_query_made_only_of_tracking() -> None:
    assert canonical_url("https://example.com/s?utm_source=a&utm_campaign=b") == (
        "https://example.com/s"
    )


def test_canonical_url_keeps_parameters_that_only_look_like_tracking() -> None:
    assert canonical_url("https://example.com/s?utmost=1&ref=home&ga=2") == (
        "https://example.com/s?utmost=1&ref=home&ga=2"
    )


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("/news/1", "https://example.com/feed.xml", "https://example.com/news/1"),
        ("2.html", "https://example.com/news/feed.xml", "https://example.com/news/2.html"),
        ("//cdn.example.com/x", "https://example.com/feed", "https://cdn.example.com/x"),
        ("https://other.org/x", "https://example.com/feed", "https://other.org/x"),
        ("?id=3&utm_source=x", "https://example.com/item", "https://example.com/item?id=3"),
    ],
)
def test_canonical_url_resolves_against_the_base(link: str, base: str, expected: str) -> None:
    assert canonical_url(link, base) == expected


@pytest.mark.parametrize(
    "link",
    [
        "",
        "   ",
        "/relative/without/base",
        "mailto:desk@example.com",
        "javascript:alert(1)",
        "ftp://example.com/file",
        "feed://example.com/rss",
        "https://",
        "http:///path-only",
        "http://[::1/broken-ipv6",
        "http://example.com:99999/port-out-of-range",
        "http://example.com:port/not-a-number",
    ],
)
def test_canonical_url_returns_none_for_invalid_or_non_http_links(link: str) -> None:
    assert canonical_url(link) is None


def test_canonical_url_escapes_what_a_url_cannot_hold() -> None:
    iri = canonical_url("https://ex.ru/новости/a b?q=мир&x=[1]")
    uri = canonical_url(
        "https://ex.ru/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8/a%20b?q=%D0%BC%D0%B8%D1%80&x=%5B1%5D"
    )
    assert iri == uri
    assert iri is not None and iri.isascii()


def test_canonical_url_survives_a_broken_base() -> None:
    assert canonical_url("/a", "http://[::1") is None


def test_canonical_url_is_idempotent() -> None:
    once = canonical_url("HTTP://Example.com:80?utm_source=x&a=1#f")
    assert once == "http://example.com/?a=1"
    assert canonical_url(once) == once


def test_guid_hash_is_32_hex_chars_of_the_stripped_guid() -> None:
    digest = guid_hash("  urn:uuid:1234\n")
    assert digest == guid_hash("urn:uuid:1234")
    assert len(digest) == 32
    assert int(digest, 16) >= 0
    assert guid_hash("urn:uuid:1235") != digest


def test_content_hash_ignores_case_and_whitespace_layout() -> None:
    one = content_hash("Port Strike Ends", "Ships  sail\n\nagain today.")
    other = content_hash("  port strike ends ", "ships sail again\ttoday.")
    assert one == other
    assert len(one) == 64


def test_content_hash_separates_title_from_text() -> None:
    assert content_hash("a", "b c") != content_hash("a b", "c")
    assert content_hash("Title", "text one") != content_hash("Title", "text two")


def test_content_hash_folds_non_ascii_case() -> None:
    assert content_hash("STRASSE", "ПРИВЕТ") == content_hash("straße", "привет")


def test_entry_guid_prefers_the_entry_id() -> None:
    assert entry_guid("  tag:example.com,2025:1 ", "https://e.com/a", "T", None) == (
        "tag:example.com,2025:1"
    )


def test_entry_guid_falls_back_to_the_canonical_link() -> None:
    guid = entry_guid(None, "https://Example.com/a?utm_source=rss#top", "Title", "today")
    assert guid == "https://example.com/a"
    assert entry_guid("   ", "https://example.com/a", None, None) == guid


def test_entry_guid_falls_back_to_title_and_date() -> None:
    guid = entry_guid(None, None, "  Water   Supply INTERRUPTED ", "Tue, 25 Feb 2025 12:00 GMT")
    assert guid == "title:water supply interrupted|Tue, 25 Feb 2025 12:00 GMT"
    assert entry_guid("", "mailto:x@example.com", "Water supply", None) == "title:water supply"


def test_entry_guid_is_stable_without_anything() -> None:
    assert entry_guid(None, None, None, None) == entry_guid(None, None, None, None) == "title:"
