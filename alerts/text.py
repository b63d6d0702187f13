"""Untrusted text made fit to show: control characters out, cut to a budget.

Shared by the Slack messages, the digest email, the console alert sink and the CLI's output.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"

# Terminal escape sequences (ECMA-48), removed whole so that no half of one is left as text:
# CSI (cursor moves, erasing the screen, colours, blinking), the strings OSC, DCS, SOS, PM and
# APC (hyperlinks, window titles, clipboard writes), and the short two- or three-byte escapes.
_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-~]"
)
_LINE_BREAKS = re.compile(r"\r\n?|[\n\x0b\x0c\x85\u2028\u2029]")
# What is left to remove: C0 but tab and newline, DEL, C1, the bidirectional marks, embeddings,
# overrides and isolates (they reorder what is shown: 'gpj.exe' can read as 'exe.jpg'), and
# lone surrogates (which no output encoding accepts).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_INVISIBLE = re.compile(f"[\x00-\x08\x0e-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
# What json.dumps(ensure_ascii=False) leaves raw that a terminal would act on (it escapes C0).
_RAW_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` without escape sequences, control or bidi control characters, tabs as spaces.

    Line breaks of every kind become '\\n' when `newlines`, else spaces. Nothing else
    changes: the result is not stripped and its spaces are not collapsed.
    """
    text = _ESCAPE_SEQUENCES.sub("", text)
    text = _LINE_BREAKS.sub("\n" if newlines else " ", text).replace("\t", " ")
    return _INVISIBLE.sub("", text)


def one_line(text: str) -> str:
    """`printable(text)` on one line, runs of whitespace as single spaces, stripped."""
    return " ".join(printable(text).split())


def json_escaped(json_text: str) -> str:
    """JSON text with every character `printable` would remove written as a \\u escape.

    The data stays the same for a JSON reader; a terminal shows the escapes as text.
    """
    return _RAW_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", json_text)


def clip(text: str, limit: int, *, cut_tail: re.Pattern[str] | None = None) -> str:
    """`text` in at most `limit` characters, ended with '…' when it had to be cut.

    `cut_tail` matches what must not be left dangling at the cut (half an HTML entity).
    """
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 0)]
    if cut_tail is not None:
        head = cut_tail.sub("", head)
    return head.rstrip() + ELLIPSIS
