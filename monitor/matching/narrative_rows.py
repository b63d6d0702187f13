"""One row of a narrative file as a pydantic model, and rows gathered into narratives.

`NarrativeRow` turns the untyped values a reader found (CSV text, JSON or YAML scalars and
lists) into a `Narrative`; every problem with a row is reported as "key: what is wrong".
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from monitor.ingest.text import storable
from monitor.types import Narrative

KNOWN_KEYS = frozenset(
    {"id", "title", "text", "summary", "examples", "keywords", "tags", "countries"}
    | {"threshold", "url", "enabled", "disproof"}
)
# What a narrative takes from an EUvsDisinfo case; `source` is the outlet's article, not documentation.
CASE_COLUMNS = ("title", "summary", "keywords", "disproof")
_MAX_MERGED_EXAMPLES = 20
_SLUG_LENGTH = 60
_EXAMPLE_SEPARATORS = re.compile(r"[|\r\n]")
_TERM_SEPARATORS = re.compile(r"[,;]")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class RowProblem:
    """Something wrong with one row or item; `line` is 1-based, 0 when unknown."""

    line: int
    message: str


@dataclass(frozen=True)
class ImportReport:
    """The narratives read from a file, and what was wrong with the rest."""

    narratives: tuple[Narrative, ...]
    problems: tuple[RowProblem, ...]


@dataclass(frozen=True)
class Row:
    """One row or item, keys lower-cased, still untyped."""

    line: int
    fields: Mapping[str, object]


def narrative_id(title: str) -> str:
    """A stable id for a title: an ASCII slug of its words plus 6 hex digits of its hash."""
    normal = normalise(title)
    digest = hashlib.sha1(normal.encode("utf-8"), usedforsecurity=False).hexdigest()[:6]
    return f"{_slug(normal)}-{digest}"


def normalise(text: str) -> str:
    """The form in which two texts count as the same: no case, no invisible characters, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    visible = "".join(char for char in text if unicodedata.category(char) != "Cf")
    return " ".join(visible.casefold().split())


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = words[0][:_SLUG_LENGTH] if words else "narrative"
    for word in words[1:]:
        if len(slug) + 1 + len(word) > _SLUG_LENGTH:
            break
        slug = f"{slug}-{word}"
    return slug


# Values ---------------------------------------------------------------------------------------


def kind(value: object) -> str:
    """How a value of the wrong type is named in a problem."""
    names = {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}
    names |= {bool: "true/false", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _text(value: object) -> str:
    """A scalar as stripped text; '' when absent."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {kind(value)}")
    return storable(str(value)).strip()  # a NUL would stop the whole import on PostgreSQL


def _items(separators: re.Pattern[str]) -> BeforeValidator:
    """A list field: a list of scalars, or one text split on `separators`."""

    def parse(value: object) -> tuple[str, ...]:
        parts = [_text(item) for item in value] if isinstance(value, list | tuple) else (
            separators.split(_text(value)))
        return unique(" ".join(part.split()) for part in parts)

    return BeforeValidator(parse)


def _threshold(value: object) -> str | None:
    return _text(value) or None  # pydantic reads the number and checks the bounds


def _enabled(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text not in _BOOLEANS and text:
        raise ValueError(f"expected true/false, yes/no or 1/0, got {text!r}")
    return _BOOLEANS.get(text, True)


def _title(value: object) -> str:
    title = " ".join(_text(value).split())
    if not title:
        raise ValueError("missing")
    return title


Text = Annotated[str, BeforeValidator(_text)]
Terms = Annotated[tuple[str, ...], _items(_TERM_SEPARATORS)]


class NarrativeRow(BaseModel):
    """The keys of one narrative as a file gives them, typed and checked."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    title: Annotated[str, BeforeValidator(_title)] = Field(default="", validate_default=True)
    id: Annotated[str, BeforeValidator(_text), Field(pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]*)?$")] = ""
    text: Text = ""
    summary: Text = ""
    examples: Annotated[tuple[str, ...], _items(_EXAMPLE_SEPARATORS)] = ()
    keywords: Terms = ()
    tags: Terms = ()
    countries: Terms = ()
    url: Text = ""
    # The bounds on the number alone: on the optional they would be applied to None (a JSON null).
    threshold: Annotated[Annotated[float, Field(gt=0, le=1)] | None, BeforeValidator(_threshold)] = None
    enabled: Annotated[bool, BeforeValidator(_enabled)] = True
    disproof: Text = ""

    @model_validator(mode="after")
    def _one_summary(self) -> NarrativeRow:
        if self.text and self.summary and self.text != self.summary:
            raise ValueError("text, summary: both given, they are one field")
        return self

    def narrative(self) -> Narrative:
        """The narrative this row stands for; its id derived from the title when none is given."""
        return Narrative(
            id=self.id or narrative_id(self.title),
            title=self.title,
            summary=self.text or self.summary,
            examples=self.examples,
            keywords=self.keywords,
            tags=self.tags,
            countries=self.countries,
            url=self.url or None,
            threshold=self.threshold,
            enabled=self.enabled,
            disproof=self.disproof,
        )


def row_narrative(fields: Mapping[str, object]) -> Narrative:
    """The narrative of one row; ValueError naming every bad key ("threshold: ...") otherwise."""
    try:
        return NarrativeRow.model_validate(fields).narrative()
    except ValidationError as exc:
        raise ValueError("; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"][:1])
    message = str(error["msg"]).removeprefix("Value error, ")
    if key == "threshold" and error["type"] != "value_error":
        message = f"expected a number above 0 and at most 1, got {str(error['input']).strip()!r}"
    elif key == "id" and error["type"] == "string_pattern_mismatch":
        message = f"{error['input']!r} may hold only letters, digits, '_', '-' and '.'"
    return f"{key}: {message}" if key else message


# Rows to narratives ---------------------------------------------------------------------------


def collect(rows: Iterable[Row | RowProblem], *, check_keys: bool) -> ImportReport:
    """Narratives from generic rows; of two rows with one id, the first is kept."""
    found: dict[str, tuple[int, Narrative]] = {}
    problems: list[RowProblem] = []
    for row in rows:
        if isinstance(row, RowProblem):
            problems.append(row)
            continue
        unknown = sorted(set(row.fields) - KNOWN_KEYS) if check_keys else []
        if unknown:
            problems.append(RowProblem(row.line, f"unknown key(s) ignored: {', '.join(unknown)}"))
        try:
            narrative = row_narrative(row.fields)
        except ValueError as exc:
            problems.append(RowProblem(row.line, f"{exc}; row skipped"))
            continue
        if narrative.id in found:
            first = found[narrative.id][0]
            message = f"duplicate id {narrative.id} (first at line {first}); row skipped"
            problems.append(RowProblem(row.line, message))
        else:
            found[narrative.id] = (row.line, narrative)
    return ImportReport(tuple(narrative for _, narrative in found.values()), tuple(problems))


def merge_cases(rows: Iterable[Row | RowProblem]) -> ImportReport:
    """Narratives from EUvsDisinfo cases; cases whose titles give one id become one narrative."""
    merged: dict[str, Narrative] = {}
    problems: list[RowProblem] = []
    for row in rows:
        if isinstance(row, RowProblem):
            problems.append(row)
            continue
        try:
            case = row_narrative({key: row.fields.get(key) for key in CASE_COLUMNS})
        except ValueError as exc:
            problems.append(RowProblem(row.line, f"{exc}; row skipped"))
            continue
        kept = merged.get(case.id)
        merged[case.id] = case if kept is None else _merge(kept, case)
    return ImportReport(tuple(merged.values()), tuple(problems))


def _merge(kept: Narrative, case: Narrative) -> Narrative:
    """`kept` with what a later case of the same claim adds: its summary as an example, its keywords."""
    summary = kept.summary or case.summary
    already_said = {normalise(kept.title), normalise(summary)}
    extra = (case.summary,) if case.summary and normalise(case.summary) not in already_said else ()
    return replace(
        kept,
        summary=summary,
        examples=unique((*kept.examples, *extra))[:_MAX_MERGED_EXAMPLES],
        keywords=unique((*kept.keywords, *case.keywords)),
        disproof=kept.disproof or case.disproof,
    )


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty values in order, without repeats that differ only in case or spacing."""
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        key = normalise(value)
        if key and key not in seen:
            seen.add(key)
            kept.append(value)
    return tuple(kept)
