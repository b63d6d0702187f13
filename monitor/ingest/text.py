"""Plain text out of the HTML (or escaped HTML, or plain text) that feeds carry."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is never readable text.
_SKIPPED = frozenset({"script", "style", "noscript", "iframe", "template", "svg", "object"})
# Elements that start a new line, and those that start a new paragraph.
_LINE_BREAKS = frozenset({"br", "div", "li", "tr", "dt", "dd", "figcaption", "caption"})
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section", "article", "header"}
    | {"footer", "aside", "nav", "main", "ul", "ol", "dl", "table", "pre", "figure", "hr"}
    | {"address", "details", "summary", "form", "fieldset"}
)
_CELLS = frozenset({"td", "th"})
_GAPS = (  # the whitespace each of those elements leaves in the text
    dict.fromkeys(_CELLS, " ")
    | dict.fromkeys(_LINE_BREAKS, "\n")
    | dict.fromkeys(_PARAGRAPHS, "\n\n")
)

# A block-level tag in the input means its line breaks are layout, not content.
_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:" + "|".join(sorted(_LINE_BREAKS | _PARAGRAPHS)) + r")\b", re.IGNORECASE
)
_ANY_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_LINE_SEPARATORS = re.compile(r"\r\n?|[\u2028\u2029\x0b\x0c\x85]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")  # \s includes NBSP and the other Unicode spaces
_BLANK_LINES = re.compile(r"\n{3,}")
# What a database text column cannot hold: NUL (PostgreSQL refuses it) and lone surrogates
# (no UTF-8 form at all), with the other C0 controls and DEL, which are never text.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class _TextExtractor(HTMLParser):
    """Collects text, turning block elements into line breaks."""

    def __init__(self, keep_newlines: bool) -> None:
        super().__init__(convert_charrefs=True)  # decodes named and numeric entities once
        self.keep_newlines = keep_newlines
        self.parts: list[str] = []
        self.skip_depth = 0
        self.saw_tag = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.saw_tag = True
        if tag in _SKIPPED:
            self.skip_depth += 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> is one break, and a self-closed <iframe/> has no content to skip.
        self.saw_tag = True
        if tag not in _SKIPPED:
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        self.saw_tag = True
        if tag in _SKIPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag != "br":  # </br> is a typo for <br>, already counted by its start tag
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        self.parts.append(data if self.keep_newlines else data.replace("\n", " "))

    def _break(self, tag: str) -> None:
        if tag == "br":  # a hard break: two in a row make a blank line
            self.parts.append("\n")
            return
        gap = _GAPS.get(tag)
        if gap is None:
            return
        # Breaks that meet (</li><li>, </p> <p>) merge into the larger one instead of
        # adding up, so a list stays one item per line.
        while self.parts and not self.parts[-1].strip():
            gap = max(gap, self.parts.pop(), key=lambda s: s.count("\n"))
        self.parts.append(gap)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML fragment, entities decoded once."""
    text, saw_tag = _extract(html)
    if not saw_tag and "&lt;" in html.lower() and _ANY_TAG.search(text):
        # The whole fragment was escaped HTML (a common feed bug): read it once more.
        # Only once, so "&amp;amp;" still ends as "&amp;" and never as "&".
        text, _ = _extract(text)
    return plain_to_text(text)


def _extract(html: str) -> tuple[str, bool]:
    """Text of the fragment, and whether it held any tag at all."""
    try:
        return _run_parser(html)
    except AssertionError:
        # Python 3.11's parser gives up on some "<![" and "<!" junk; read those as text.
        return _run_parser(html.replace("<!", "&lt;!"))


def _run_parser(html: str) -> tuple[str, bool]:
    """One pass of _TextExtractor over the fragment."""
    # Plain text keeps its own line breaks; inside HTML a newline is just a space.
    parser = _TextExtractor(keep_newlines=not _BLOCK_TAG.search(html))
    parser.feed(_LINE_SEPARATORS.sub("\n", html))
    parser.close()
    return "".join(parser.parts), parser.saw_tag


def plain_to_text(text: str) -> str:
    """Tidy plain text: no zero-width characters, single spaces, stripped lines, one blank line."""
    text = _LINE_SEPARATORS.sub("\n", text.translate(_ZERO_WIDTH))
    lines = (_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def clean_line(s: str, *, is_html: bool = True) -> str:
    """One line of text (a title, an author): markup removed, all whitespace single spaces."""
    text = html_to_text(s) if is_html else plain_to_text(s)
    return " ".join(text.split())


def storable(s: str) -> str:
    """The text without characters a database column cannot hold (NUL, lone surrogates, controls)."""
    return _UNSTORABLE.sub("", s)
