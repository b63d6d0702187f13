"""Links built from untrusted feed URLs, shared by the Slack message and the digest email."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

URL_LIMIT = 2000  # a longer URL is shown as text (or left out) rather than linked

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters that would end or break a link in HTML or in Slack's <url|label> markup, and the
# bidi controls, which would reorder the URL where it is shown as text.
_UNSAFE = re.compile('[\\s"<>\\\\^`{|}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]')


def http_url(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL, with unsafe characters percent-encoded; else None."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    url = _UNSAFE.sub(lambda found: quote(found.group(), safe=""), _CONTROL.sub("", url))
    return url if len(url) <= URL_LIMIT else None
