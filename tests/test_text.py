"""HTML (and escaped HTML, and plain text) to readable plain text."""

from __future__ import annotations

import pytest

from monitor.ingest.text import clean_line, html_to_text, plain_to_text


def test_paragraphs_become_lines_separated_by_one_blank_line() -> None:
    html = "<p>First paragraph.</p>\n\n  <p>Second\n   paragraph.</p><div>Third</div>"
    assert html_to_text(html) == "First paragraph.\n\nSecond paragraph.\n\nThird"


def test_line_breaks_and_list_items() -> None:
    html = "Line one<br>Line two<br/><br />After a gap<ul>\n<li>apples</li>\n<li>pears</li></ul>"
    assert html_to_text(html) == "Line one\nLine two\n\nAfter a gap\n\napples\npears"


@pytest.mark.parametrize("tag", ["h1", "h3", "h6", "blockquote", "section", "article"])
def test_block_elements_break_lines(tag: str) -> None:
    assert html_to_text(f"before<{tag}>inside</{tag}>after") == "before\n\ninside\n\nafter"


def test_table_rows_are_lines_and_cells_are_separated() -> None:
    html = "<table><tr><th>City</th><th>Rain</th></tr><tr><td>Kyiv</td><td>4 mm</td></tr></table>"
    assert html_to_text(html) == "City Rain\nKyiv 4 mm"


def test_script_style_noscript_iframe_content_is_dropped() -> None:
    html = (
        "<p>Kept</p><script>var tracker = '<p>no</p>';</script><style>p { color: red }</style>"
        "<noscript>Enable JavaScript</noscript><iframe src='ad.html'>ad</iframe>"
        "<iframe src='x'/><p>Also kept</p>"
    )
    assert html_to_text(html) == "Kept\n\nAlso kept"


def test_entities_named_and_numeric_are_decoded() -> None:
    html = "Caf&eacute; &amp; bar &#8211; &#x41F;&#1088;&#1080;&#x432;&#1077;&#1090; &lt;3"
    assert html_to_text(html) == "Café & bar – Привет <3"


def test_entities_are_decoded_once_only() -> None:
    # A double-escaped entity is decoded one level: the author may have meant it literally.
    assert html_to_text("Tom &amp;amp; Jerry") == "Tom &amp; Jerry"
    assert html_to_text("<p>&amp;lt;b&amp;gt;</p>") == "&lt;b&gt;"


def test_escaped_html_is_read_as_html() -> None:
    escaped = (
        "&lt;p&gt;Rain &amp;amp; wind&lt;/p&gt;&lt;p&gt;Roads &lt;b&gt;closed&lt;/b&gt;&lt;/p&gt;"
    )
    assert html_to_text(escaped) == "Rain & wind\n\nRoads closed"


def test_escaped_comparison_is_not_taken_for_markup() -> None:
    assert html_to_text("inflation &lt; 3% and rates &gt; 4%") == "inflation < 3% and rates > 4%"


def test_nbsp_and_zero_width_characters() -> None:
    html = "Ten&nbsp;km\u00a0north\u202fof the\u200b city;\ufeffno\u200d\u2060 joins"
    assert html_to_text(html) == "Ten km north of the city;no joins"


def test_runs_of_spaces_and_tabs_collapse_and_lines_are_stripped() -> None:
    assert html_to_text("<p>  a \t\t b  </p>\t<p>\tc   </p>") == "a b\n\nc"


def test_plain_text_keeps_its_own_line_breaks() -> None:
    text = "First line\r\nSecond line\n\n\n\nNew paragraph  \n"
    assert html_to_text(text) == "First line\nSecond line\n\nNew paragraph"


def test_inline_markup_in_plain_text_keeps_line_breaks() -> None:
    assert html_to_text("One <b>bold</b> line\nand the next") == "One bold line\nand the next"


@pytest.mark.parametrize("html", ["", "   ", "<p></p>", "<br><br>", "<script>x()</script>"])
def test_empty_results(html: str) -> None:
    assert html_to_text(html) == ""


@pytest.mark.parametrize(
    "html", ["a <b", "<", "</", "<!", "<![", "<!--", "x<![CDATA[y]]>z", "<![if x]>", "<!x"]
)
def test_broken_markup_does_not_raise(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_a_marked_section_the_parser_rejects_is_read_as_text() -> None:
    # Python 3.11's HTMLParser raises AssertionError on an unknown "<![keyword".
    assert html_to_text("Before <![sia b]]> after<p>next</p>") == "Before <![sia b]]> after\n\nnext"


def test_plain_to_text_does_not_read_markup() -> None:
    assert plain_to_text("1 < 2 &amp; <b>x</b>\u00a0 y") == "1 < 2 &amp; <b>x</b> y"


def test_clean_line_makes_one_line() -> None:
    assert clean_line("<b>Breaking:</b>\n  port   strike &amp; talks<br>end") == (
        "Breaking: port strike & talks end"
    )
    assert clean_line("Not <html> at all", is_html=False) == "Not <html> at all"
    assert clean_line("") == ""
