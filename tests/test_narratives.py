"""Reading narrative files: fixtures under tests/data/narratives (see its README), the starter file."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from monitor.matching.narrative_files import (
    STARTER_NARRATIVES,
    ImportReport,
    NarrativeFileError,
    RowProblem,
    narrative_id,
    read_narratives,
)
from monitor.types import Narrative

DATA = Path(__file__).parent / "data" / "narratives"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EUVSDISINFO_CSV = SHARED_DATA / "euvsdisinfo" / "cases-2015-2016.csv"


def by_id(report: ImportReport) -> dict[str, Narrative]:
    return {narrative.id: narrative for narrative in report.narratives}


def problem_lines(report: ImportReport) -> list[int]:
    return [problem.line for problem in report.problems]


def problem_at(report: ImportReport, line: int) -> str:
    return " / ".join(problem.message for problem in report.problems if problem.line == line)


# Generic files ------------------------------------------------------------------------------


def test_csv_imports_valid_rows_and_reports_bad_ones_by_line() -> None:
    report = read_narratives(DATA / "generic.csv")

    derived = narrative_id("Sanctions hurt only the Europeans.")
    assert [n.id for n in report.narratives] == ["gas-blackmail", derived, "switched-off", "spaced-out"]
    assert problem_lines(report) == [5, 6, 7, 9, 12]
    assert problem_at(report, 5).startswith("title:")
    assert problem_at(report, 6).startswith("threshold:")
    assert problem_at(report, 7).startswith("enabled:")
    assert problem_at(report, 9) == "duplicate id gas-blackmail (first at line 2); row skipped"
    assert "13 fields" in problem_at(report, 12)


def test_csv_values_become_typed_fields() -> None:
    narratives = by_id(read_narratives(DATA / "generic.csv"))

    assert narratives["gas-blackmail"] == Narrative(
        id="gas-blackmail",
        title="Europe will freeze this winter without Russian gas.",
        summary="Comes back every autumn with pictures of empty storage tanks.",
        examples=("Europe faces a cold and dark winter", "Европа замёрзнет без нашего газа"),
        keywords=("gas", "energy"),  # "Gas" repeats "gas"
        tags=("energy",),
        countries=("DE", "FR"),
        url="https://example.org/narratives/gas",
        threshold=0.8,
        enabled=True,
        disproof="Storage was full before the heating season.",
    )
    derived = narratives[narrative_id("Sanctions hurt only the Europeans.")]
    assert derived.examples == ("Sanctions ruin German industry", "Санкции бьют по Европе")
    assert narratives["switched-off"].enabled is False
    spaced = narratives["spaced-out"]
    assert (spaced.title, spaced.threshold) == ("Whitespace around values is dropped.", 0.5)


def test_tsv_skips_empty_rows_silently() -> None:
    report = read_narratives(DATA / "generic.tsv")

    assert [n.title for n in report.narratives] == [
        "Moldova is being pushed into the war.",
        "The Baltic states persecute Russian speakers.",
    ]
    assert report.narratives[0].keywords == ("Moldova", "Transnistria")
    assert report.problems == ()


def test_json_items_are_located_by_line() -> None:
    report = read_narratives(DATA / "generic.json")

    narratives = by_id(report)
    biolabs = narratives["biolabs"]
    assert biolabs.keywords == ("biolabs", "Pentagon")
    assert biolabs.countries == ("UA", "GE")
    assert biolabs.threshold == 0.75
    assert narratives[narrative_id("A narrative switched off in JSON.")].enabled is False
    assert problem_lines(report) == [12, 12, 16, 17, 22]
    assert "titel" in problem_at(report, 12)
    assert "title: missing" in problem_at(report, 12)
    assert "source" in problem_at(report, 17)
    assert problem_at(report, 22).startswith("summary:")


def test_jsonl_reports_unparseable_and_non_object_lines() -> None:
    report = read_narratives(DATA / "generic.jsonl")

    zelensky = by_id(report)[narrative_id("Zelensky's mandate has expired.")]
    assert (zelensky.threshold, zelensky.enabled, zelensky.url) == (
        0.9,
        False,
        "https://example.org/zelensky",
    )
    assert by_id(report)["staged-bucha"].tags == ("ukraine", "staged")
    assert problem_lines(report) == [2, 4, 5, 7]
    assert "not valid JSON" in problem_at(report, 2)
    assert problem_at(report, 7).startswith("threshold:")


def test_yaml_items_are_located_by_line() -> None:
    report = read_narratives(DATA / "generic.yaml")

    derived = narrative_id("Ukraine is not a real country.")
    assert [n.id for n in report.narratives] == ["maidan-coup", derived, "nato-promise"]
    examples = ("Украина — искусственное государство", "Ukraine is a Soviet invention")
    assert by_id(report)[derived].examples == examples
    assert by_id(report)["nato-promise"].threshold == 1.0
    assert problem_lines(report) == [20, 20, 22, 25, 28]
    assert "titel" in problem_at(report, 20)
    assert problem_at(report, 22).startswith("enabled:")
    assert problem_at(report, 25).startswith("countries:")  # NO unquoted is YAML's false
    assert "first at line 6" in problem_at(report, 28)


# The EUvsDisinfo export ---------------------------------------------------------------------


def test_euvsdisinfo_cases_with_one_claim_merge_into_one_narrative() -> None:
    report = read_narratives(DATA / "euvsdisinfo.csv")

    assert report.problems == (RowProblem(5, "title: missing; row skipped"),)
    assert len(report.narratives) == 2
    nazis, media = report.narratives
    assert nazis.id == narrative_id("Kyiv is governed by neo-Nazis.")
    assert nazis.title == "Kyiv is governed by neo-Nazis."
    assert nazis.summary == "An outlet said the government in Kyiv takes orders from neo-Nazi battalions."
    assert nazis.examples == (
        "A talk show host said the Maidan put Nazis in power.",
        "An outlet said the West installed neo-Nazis in Kyiv.",
    )
    assert nazis.keywords == ("Ukraine", "Nazis", "Maidan")
    assert nazis.disproof == "Far-right parties won about two percent of the vote."
    assert nazis.url is None  # `source` is the outlet's article, not where the claim is debunked
    assert media.title == "Russian media are banned in the Baltic states to silence dissent."
    assert media.keywords == ("Baltic states", "Media")


# Ids ------------------------------------------------------------------------------------------


def test_derived_ids_are_stable_slugs_with_a_hash() -> None:
    assert narrative_id("Sanctions hurt only the Europeans.") == "sanctions-hurt-only-the-europeans-e36246"
    assert narrative_id("  SANCTIONS hurt\tonly the  Europeans. ") == narrative_id(
        "Sanctions hurt only the Europeans."
    )
    assert narrative_id("Sanctions\ufeff hurt only the Europeans.") == narrative_id(
        "Sanctions hurt only the Europeans."
    )
    assert narrative_id("Guvernul de la Chișinău minte.").startswith("guvernul-de-la-chisinau-minte-")
    assert re.fullmatch(r"narrative-[0-9a-f]{6}", narrative_id("Запад готовит войну."))


def test_derived_ids_differ_for_different_titles() -> None:
    titles = [
        "Запад готовит войну.",
        "Запад готовит провокацию.",
        "NATO is encircling Russia.",
        "NATO is encircling Russia!",
        "NATO is encircling Belarus.",
    ]
    assert len({narrative_id(title) for title in titles}) == len(titles)


def test_long_titles_are_cut_at_a_word_boundary() -> None:
    title = "The protests in the capital were organised by foreign embassies and paid for by Western funds."
    slug = narrative_id(title).rsplit("-", 1)[0]

    assert len(slug) <= 60
    assert "the-protests-in-the-capital-were-organised-by-foreign".startswith(slug)
    assert title.lower().replace(" ", "-").startswith(slug + "-")


# Whole-file errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason", "line"),
    [
        ("narratives.txt", "title\nA claim.\n", "unknown narrative file type '.txt'", None),
        ("broken.json", '[\n  {"title": "A claim."},\n  {"title": }\n]\n', "not valid JSON", 3),
        ("scalar.json", '"just text"', "expected a list of narratives", None),
        ("broken.yaml", "- title: A claim.\n- title: [unclosed\n", "not valid YAML", 3),
        ("empty.yaml", "# nothing here\n", "expected a list of narratives", None),
        ("no-title.csv", "id,summary\nx,A summary.\n", "'title' column", 1),
        ("empty.csv", "", "'title' column", 1),
    ],
)
def test_unreadable_files_raise_with_the_file_named(
    tmp_path: Path, name: str, content: str, reason: str, line: int | None
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    with pytest.raises(NarrativeFileError) as raised:
        read_narratives(path)

    assert reason in raised.value.reason
    assert raised.value.line == line
    assert str(path) in str(raised.value)


def test_missing_and_non_utf8_files_raise(tmp_path: Path) -> None:
    with pytest.raises(NarrativeFileError, match="cannot read the file"):
        read_narratives(tmp_path / "absent.csv")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("title\nLa Géorgie est manipulée.\n".encode("latin-1"))
    with pytest.raises(NarrativeFileError, match="not UTF-8"):
        read_narratives(latin1)


def test_csv_with_bom_and_crlf_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    rows = ["Title,Examples", '"A claim.","one\r\ntwo"', ",no title", "Another claim.,"]
    path.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))

    report = read_narratives(path)

    assert [n.title for n in report.narratives] == ["A claim.", "Another claim."]
    assert report.narratives[0].examples == ("one", "two")
    assert problem_lines(report) == [4]


# The starter file ---------------------------------------------------------------------------


def test_starter_narratives_load_without_problems() -> None:
    report = read_narratives(STARTER_NARRATIVES)

    assert report.problems == ()
    assert 18 <= len(report.narratives) <= 25
    ids = [narrative.id for narrative in report.narratives]
    assert len(set(ids)) == len(ids)
    for narrative in report.narratives:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", narrative.id)
        assert narrative.title and narrative.summary, narrative.id
        assert len(narrative.examples) >= 3, narrative.id
        assert any(re.search("[а-яё]", example) for example in narrative.examples), narrative.id
        assert narrative.tags and narrative.countries and narrative.keywords, narrative.id
        assert narrative.url is None and narrative.enabled


# The real EUvsDisinfo export ----------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.skipif(not EUVSDISINFO_CSV.exists(), reason="../shared/data/euvsdisinfo is absent")
def test_real_euvsdisinfo_export_gives_one_narrative_per_claim() -> None:
    with EUVSDISINFO_CSV.open(encoding="utf-8-sig", newline="") as file:
        titles = [row["title"] for row in csv.DictReader(file)]

    report = read_narratives(EUVSDISINFO_CSV)

    assert len(report.narratives) == len({narrative_id(title) for title in titles if title.strip()})
    assert len(report.problems) == sum(1 for title in titles if not title.strip())
    assert all(problem.message.startswith("title: missing") for problem in report.problems)
    assert all(narrative.title and narrative.disproof for narrative in report.narratives)
