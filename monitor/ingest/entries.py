"""What each reader makes of one feed entry, and the small rules both readers share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
# A written date with a year in it. Only those are counted when unusable: "not a date" or an
# empty <pubDate> is a missing date, not one worth a warning on every poll.
_YEAR = re.compile(r"\d{4}")


@dataclass(frozen=True)
class Entry:
    """One entry as a reader found it: text already plain, nothing defaulted yet."""

    id: str | None
    link: str | None
    title: str
    text: str
    author: str | None
    language: str | None  # declared by the entry or its feed, normalised
    published: datetime | None  # aware UTC
    published_raw: str | None  # as written, for the fallback guid
    dated: bool = False  # the entry wrote a date with a year, usable or not


def json_string(value: object) -> str:
    """A JSON string (or number, for ids) stripped; anything else as empty."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value).strip()


def has_year(*values: object) -> bool:
    """Whether any of the values is text holding something like a year."""
    return any(isinstance(value, str) and _YEAR.search(value) for value in values)


def language_tag(value: object) -> str | None:
    """A language tag lower-cased ("en-gb"), or None when it does not look like one."""
    if not isinstance(value, str):
        return None
    tag = value.strip().lower().replace("_", "-")
    return tag if _LANGUAGE.fullmatch(tag) else None


def aware_utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
