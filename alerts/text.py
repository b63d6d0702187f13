"""Cutting untrusted text to a budget, shared by the Slack messages and the digest email."""

from __future__ import annotations

import re

ELLIPSIS = "…"


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
