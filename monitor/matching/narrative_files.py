"""Reading narrative files: CSV, TSV, JSON, JSON Lines and YAML, and the EUvsDisinfo CSV export.

A file yields an `ImportReport`: every narrative that could be read, and one `RowProblem`
per row or item that was skipped or carried something unexpected. Only a file that cannot
be read at all (unknown type, unreadable, not parseable) raises `NarrativeFileError`.
The readers here find the rows and their lines; monitor/matching/narrative_rows.py types
them (a pydantic model) and gathers them into narratives.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from monitor.errors import NarrativeFileError
from monitor.matching.narrative_rows import (
    ImportReport,
    Row,
    RowProblem,
    collect,
    kind,
    merge_cases,
    narrative_id,
)

if TYPE_CHECKING:
    from _csv import Reader  # what csv.reader() returns; a private name, for annotations only

__all__ = ["STARTER_NARRATIVES", "ImportReport", "RowProblem", "narrative_id", "read_narratives"]

STARTER_NARRATIVES = Path(__file__).parents[1] / "data" / "narratives.yaml"
_EUVSDISINFO_HEADER = frozenset({"summary", "disproof", "outlet"})
# One cell longer than this is a broken row (a lost closing quote swallows the rest of the
# file), not a narrative: the row is skipped and reported, the others imported. The csv
# module's own limit (128 KB) would abort the whole file instead, so it is lifted past ours.
MAX_CELL_CHARS = 100_000
csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))


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
    try:
        return read(text, path)
    except RecursionError:  # json and YAML's composer recurse once per level of nesting
        raise NarrativeFileError(path, "nested too deeply to be a narrative file") from None


def _item_row(line: int, value: object) -> Row | RowProblem:
    """A JSON or YAML item as a row, or a problem when it is not a mapping."""
    if not isinstance(value, dict):
        return RowProblem(line, f"expected a mapping of a narrative's keys, got {kind(value)}")
    return Row(line, {str(key).strip().lower(): item for key, item in value.items()})


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
        return merge_cases(rows)
    return collect(rows, check_keys=False)  # exports carry columns of their own


def _csv_rows(reader: Reader, header: list[str], path: Path) -> Iterator[Row | RowProblem]:
    start = reader.line_num + 1  # csv yields [] for a blank line, so the count stays exact
    try:
        for record in reader:
            longest = max(map(len, record), default=0)
            if len(record) > len(header):
                yield RowProblem(start, f"{len(record)} fields but {len(header)} columns; row skipped")
            elif longest > MAX_CELL_CHARS:
                yield RowProblem(start, f"a cell of {longest} characters (at most {MAX_CELL_CHARS}); "
                                        "row skipped")
            elif any(value.strip() for value in record):
                values = zip(header, (value.strip() for value in record), strict=False)
                yield Row(start, {name: value for name, value in values if value})
            start = reader.line_num + 1
    except csv.Error as exc:
        raise NarrativeFileError(path, f"not valid CSV: {exc}", reader.line_num) from exc


def _read_jsonl(text: str, path: Path) -> ImportReport:
    return collect(_jsonl_rows(text), check_keys=True)


def _jsonl_rows(text: str) -> Iterator[Row | RowProblem]:
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 is valid in JSON
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RowProblem(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        except RecursionError:
            yield RowProblem(number, "nested too deeply; row skipped")
            continue
        yield _item_row(number, value)


def _read_json(text: str, path: Path) -> ImportReport:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NarrativeFileError(path, f"not valid JSON: {exc.msg}", exc.lineno) from exc
    if isinstance(document, dict) and isinstance(document.get("narratives"), list):
        items = document["narratives"]
    elif isinstance(document, list):
        items = document
    else:
        raise NarrativeFileError(path, "expected a list of narratives, or an object with a 'narratives' list")
    lines = _json_item_lines(text, len(items))
    rows = (_item_row(line, value) for line, value in zip(lines, items, strict=True))
    return collect(rows, check_keys=True)


def _json_item_lines(text: str, count: int) -> list[int]:
    """The line of each item, from YAML's composer: JSON is YAML's flow style; 0 where it cannot tell.

    Every tab in valid JSON is whitespace (a string cannot hold one raw), which YAML 1.1 refuses
    there: it becomes a space, so the lines stay where they are.
    """
    loader = yaml.SafeLoader(text.replace("\t", " "))
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return [0] * count
    finally:
        loader.dispose()
    sequence = _yaml_list(root)
    if sequence is None or len(sequence.value) != count:
        return [0] * count
    return [node.start_mark.line + 1 for node in sequence.value]


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
    return collect(rows, check_keys=True)


def _yaml_items(root: yaml.Node | None, path: Path) -> list[yaml.Node]:
    sequence = _yaml_list(root)
    if sequence is None:
        raise NarrativeFileError(path, "expected a list of narratives, or a mapping with a 'narratives' list")
    items: list[yaml.Node] = sequence.value
    return items


def _yaml_list(root: yaml.Node | None) -> yaml.SequenceNode | None:
    """The root sequence, or the one under the root's 'narratives' key (the last, as json has it)."""
    if isinstance(root, yaml.MappingNode):
        members = {key.value: value for key, value in root.value if isinstance(key, yaml.ScalarNode)}
        root = members.get("narratives")
    return root if isinstance(root, yaml.SequenceNode) else None


def _yaml_row(loader: yaml.SafeLoader, node: yaml.Node) -> Row | RowProblem:
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
