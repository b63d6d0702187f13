"""Reading narrative files: CSV, TSV, JSON, JSON Lines and YAML, and the EUvsDisinfo CSV export.

A file yields an `ImportReport`: every narrative that could be read, and one `RowProblem`
per row or item that was skipped or carried something unexpected. Only a file that cannot
be read at all (unknown type, unreadable, not parseable) raises `NarrativeFileError`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from monitor.errors import NarrativeFileError
from monitor.types import Narrative

if TYPE_CHECKING:
    from _csv import Reader  # what csv.reader() returns; a private name, for annotations only

STARTER_NARRATIVES = Path(__file__).parents[1] / "data" / "narratives.yaml"

_KNOWN_KEYS = frozenset(
    {"id", "title", "text", "summary", "examples", "keywords", "tags", "countries"}
    | {"threshold", "url", "enabled", "disproof"}
)
# What a narrative takes from an EUvsDisinfo case; `source` is the outlet's article, not documentation.
_CASE_COLUMNS = ("title", "summary", "keywords", "disproof")
_EUVSDISINFO_HEADER = frozenset({"summary", "disproof", "outlet"})
_MAX_MERGED_EXAMPLES = 20
_SLUG_LENGTH = 60
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_EXAMPLE_SEPARATORS = re.compile(r"[|\r\n]")
_TERM_SEPARATORS = re.compile(r"[,;]")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON = json.JSONDecoder()


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
class _Row:
    """One row or item, keys lower-cased, still untyped."""

    line: int
    fields: Mapping[str, object]


class _FieldError(ValueError):
    """A value that cannot be used; the message starts with its key."""


def read_narratives(path: Path) -> ImportReport:
    """Narratives from a file whose extension names its format, with a problem per bad row."""
    read = _READERS.get(path.suffix.lower())
    if read is None:
        known = ", ".join(_READERS)
        raise NarrativeFileError(path, f"unknown narrative file type {path.suffix!r} (expected {known})")
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            text = file.read()
    except UnicodeDecodeError as exc:
        raise NarrativeFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise NarrativeFileError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    return read(text, path)


def narrative_id(title: str) -> str:
    """A stable id for a title: an ASCII slug of its words plus 6 hex digits of its hash."""
    normal = _normalise(title)
    digest = hashlib.sha1(normal.encode("utf-8"), usedforsecurity=False).hexdigest()[:6]
    return f"{_slug(normal)}-{digest}"


def _normalise(text: str) -> str:
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


# Rows to narratives ------------------------------------------------------------------------


def _collect(rows: Iterable[_Row | RowProblem], *, check_keys: bool) -> ImportReport:
    """Narratives from generic rows; of two rows with one id, the first is kept."""
    found: dict[str, tuple[int, Narrative]] = {}
    problems: list[RowProblem] = []
    for row in rows:
        if isinstance(row, RowProblem):
            problems.append(row)
            continue
        unknown = sorted(set(row.fields) - _KNOWN_KEYS) if check_keys else []
        if unknown:
            problems.append(RowProblem(row.line, f"unknown key(s) ignored: {', '.join(unknown)}"))
        try:
            narrative = _narrative(row.fields)
        except _FieldError as exc:
            problems.append(RowProblem(row.line, f"{exc}; row skipped"))
            continue
        if narrative.id in found:
            first = found[narrative.id][0]
            message = f"duplicate id {narrative.id} (first at line {first}); row skipped"
            problems.append(RowProblem(row.line, message))
        else:
            found[narrative.id] = (row.line, narrative)
    return ImportReport(tuple(narrative for _, narrative in found.values()), tuple(problems))


def _merge_cases(rows: Iterable[_Row | RowProblem]) -> ImportReport:
    """Narratives from EUvsDisinfo cases; cases whose titles give one id become one narrative."""
    merged: dict[str, Narrative] = {}
    problems: list[RowProblem] = []
    for row in rows:
        if isinstance(row, RowProblem):
            problems.append(row)
            continue
        try:
            case = _narrative({key: row.fields.get(key) for key in _CASE_COLUMNS})
        except _FieldError as exc:
            problems.append(RowProblem(row.line, f"{exc}; row skipped"))
            continue
        kept = merged.get(case.id)
        merged[case.id] = case if kept is None else _merge(kept, case)
    return ImportReport(tuple(merged.values()), tuple(problems))


def _merge(kept: Narrative, case: Narrative) -> Narrative:
    """`kept` with what a later case of the same claim adds: its summary as an example, its keywords."""
    summary = kept.summary or case.summary
    already_said = {_normalise(kept.title), _normalise(summary)}
    extra = (case.summary,) if case.summary and _normalise(case.summary) not in already_said else ()
    return replace(
        kept,
        summary=summary,
        examples=_unique((*kept.examples, *extra))[:_MAX_MERGED_EXAMPLES],
        keywords=_unique((*kept.keywords, *case.keywords)),
        disproof=kept.disproof or case.disproof,
    )


def _narrative(fields: Mapping[str, object]) -> Narrative:
    title = " ".join(_text("title", fields.get("title")).split())
    if not title:
        raise _FieldError("title: missing")
    given_id = _text("id", fields.get("id"))
    if given_id and not _ID.fullmatch(given_id):
        raise _FieldError(f"id: {given_id!r} may hold only letters, digits, '_', '-' and '.'")
    text, summary = _text("text", fields.get("text")), _text("summary", fields.get("summary"))
    if text and summary and text != summary:
        raise _FieldError("text, summary: both given, they are one field")
    return Narrative(
        id=given_id or narrative_id(title),
        title=title,
        summary=text or summary,
        examples=_items("examples", fields.get("examples"), _EXAMPLE_SEPARATORS),
        keywords=_items("keywords", fields.get("keywords"), _TERM_SEPARATORS),
        tags=_items("tags", fields.get("tags"), _TERM_SEPARATORS),
        countries=_items("countries", fields.get("countries"), _TERM_SEPARATORS),
        url=_text("url", fields.get("url")) or None,
        threshold=_threshold(fields.get("threshold")),
        enabled=_enabled(fields.get("enabled")),
        disproof=_text("disproof", fields.get("disproof")),
    )


def _text(key: str, value: object) -> str:
    """A scalar as stripped text; '' when absent."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _FieldError(f"{key}: expected text, got {_kind(value)}")
    return str(value).strip()


def _items(key: str, value: object, separators: re.Pattern[str]) -> tuple[str, ...]:
    """A list field: a list of scalars, or one text split on `separators`."""
    if isinstance(value, list | tuple):
        parts = [_text(key, item) for item in value]
    else:
        parts = separators.split(_text(key, value))
    return _unique(" ".join(part.split()) for part in parts)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty values in order, without repeats that differ only in case or spacing."""
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        key = _normalise(value)
        if key and key not in seen:
            seen.add(key)
            kept.append(value)
    return tuple(kept)


def _threshold(value: object) -> float | None:
    text = _text("threshold", value)
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not 0 < number <= 1:  # also refuses nan
        raise _FieldError(f"threshold: expected a number above 0 and at most 1, got {text!r}")
    return number


def _enabled(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text("enabled", value).lower()
    if text not in _BOOLEANS and text:
        raise _FieldError(f"enabled: expected true/false, yes/no or 1/0, got {text!r}")
    return _BOOLEANS.get(text, True)


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}
    names |= {bool: "true/false", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _item_row(line: int, value: object) -> _Row | RowProblem:
    """A JSON or YAML item as a row, or a problem when it is not a mapping."""
    if not isinstance(value, dict):
        return RowProblem(line, f"expected a mapping of a narrative's keys, got {_kind(value)}")
    return _Row(line, {str(key).strip().lower(): item for key, item in value.items()})


# Formats ------------------------------------------------------------------------------------


def _read_csv(text: str, path: Path, delimiter: str) -> ImportReport:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip().lower() for name in next(reader, [])]
    except csv.Error as exc:
        raise NarrativeFileError(path, f"not valid CSV: {exc}", reader.line_num) from exc
    if "title" not in header:
        raise NarrativeFileError(path, "the first line is not a header with a 'title' column", 1)
    rows = _csv_rows(reader, header, path)
    if set(header) >= _EUVSDISINFO_HEADER:
        return _merge_cases(rows)
    return _collect(rows, check_keys=False)  # exports carry columns of their own


def _csv_rows(reader: Reader, header: list[str], path: Path) -> Iterator[_Row | RowProblem]:
    start = reader.line_num + 1  # csv yields [] for a blank line, so the count stays exact
    try:
        for record in reader:
            if len(record) > len(header):
                yield RowProblem(start, f"{len(record)} fields but {len(header)} columns; row skipped")
            elif any(value.strip() for value in record):
                values = zip(header, (value.strip() for value in record), strict=False)
                yield _Row(start, {name: value for name, value in values if value})
            start = reader.line_num + 1
    except csv.Error as exc:
        raise NarrativeFileError(path, f"not valid CSV: {exc}", reader.line_num) from exc


def _read_jsonl(text: str, path: Path) -> ImportReport:
    return _collect(_jsonl_rows(text), check_keys=True)


def _jsonl_rows(text: str) -> Iterator[_Row | RowProblem]:
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 is valid in JSON
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RowProblem(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        yield _item_row(number, value)


def _read_json(text: str, path: Path) -> ImportReport:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NarrativeFileError(path, f"not valid JSON: {exc.msg}", exc.lineno) from exc
    start = _json_skip(text, 0)
    if isinstance(document, dict) and isinstance(document.get("narratives"), list):
        start = _json_member(text, start, "narratives")
    elif not isinstance(document, list):
        raise NarrativeFileError(path, "expected a list of narratives, or an object with a 'narratives' list")
    rows = (_item_row(line, value) for line, value in _json_array(text, start))
    return _collect(rows, check_keys=True)


def _json_skip(text: str, pos: int) -> int:
    match = _JSON_SPACE.match(text, pos)
    return match.end() if match else pos


def _json_member(text: str, pos: int, key: str) -> int:
    """Where the value of `key` starts in the valid JSON object at `pos` (the last one, as json does)."""
    found, pos = pos, _json_skip(text, pos + 1)
    while text[pos] == '"':
        name, end = _JSON.raw_decode(text, pos)
        pos = _json_skip(text, _json_skip(text, end) + 1)  # past the colon
        found = pos if name == key else found
        _, end = _JSON.raw_decode(text, pos)
        pos = _json_skip(text, end)
        pos = _json_skip(text, pos + 1) if text[pos] == "," else pos
    return found


def _json_array(text: str, pos: int) -> Iterator[tuple[int, object]]:
    """(line, value) of each element of the valid JSON array at `pos`."""
    line, counted = 1, 0
    pos = _json_skip(text, pos + 1)
    while text[pos] != "]":
        value, end = _JSON.raw_decode(text, pos)
        line, counted = line + text.count("\n", counted, pos), pos
        yield line, value
        pos = _json_skip(text, end)
        pos = _json_skip(text, pos + 1) if text[pos] == "," else pos


def _read_yaml(text: str, path: Path) -> ImportReport:
    loader = yaml.SafeLoader(text)
    try:
        items = _yaml_items(loader.get_single_node(), path)
        rows = [_yaml_row(loader, node) for node in items]
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise NarrativeFileError(path, f"not valid YAML: {exc.problem}", line) from exc
    except yaml.YAMLError as exc:
        raise NarrativeFileError(path, f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return _collect(rows, check_keys=True)


def _yaml_items(root: yaml.Node | None, path: Path) -> list[yaml.Node]:
    if isinstance(root, yaml.MappingNode):
        members = {key.value: value for key, value in root.value if isinstance(key, yaml.ScalarNode)}
        root = members.get("narratives")
    if not isinstance(root, yaml.SequenceNode):
        raise NarrativeFileError(path, "expected a list of narratives, or a mapping with a 'narratives' list")
    items: list[yaml.Node] = root.value
    return items


def _yaml_row(loader: yaml.SafeLoader, node: yaml.Node) -> _Row | RowProblem:
    line = node.start_mark.line + 1
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:  # an unknown tag, say: only this item is lost
        return RowProblem(line, f"cannot read this item: {exc.problem}")
    return _item_row(line, value)


_READERS: dict[str, Callable[[str, Path], ImportReport]] = {
    ".csv": lambda text, path: _read_csv(text, path, ","),
    ".tsv": lambda text, path: _read_csv(text, path, "\t"),
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".yaml": _read_yaml,
    ".yml": _read_yaml,
}
