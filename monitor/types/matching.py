"""Narratives and the matches scored against them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Narrative:
    """A documented, debunked claim that analysts want to hear about when it resurfaces."""

    id: str
    title: str  # the claim, one sentence
    summary: str = ""
    examples: tuple[str, ...] = ()  # other phrasings, any language
    keywords: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    url: str | None = None  # where it is documented (and debunked)
    threshold: float | None = None  # overrides [matching] alert_threshold for this narrative
    enabled: bool = True
    disproof: str = ""


class Tier(StrEnum):
    ALERT = "alert"  # worth interrupting an analyst now
    WATCH = "watch"  # worth a line in the daily digest


@dataclass(frozen=True)
class Scored:
    """One narrative's best score over an article's passages."""

    narrative_id: str
    score: float
    passage_index: int


@dataclass(frozen=True)
class Match:
    """An article that repeats a narrative, with the evidence."""

    article_id: int
    narrative_id: str
    score: float
    tier: Tier
    passage: str  # the passage that scored best
    evidence: str  # its sentence closest to the narrative
