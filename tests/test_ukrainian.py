"""Ukrainian respelt towards Russian for the multilingual model (monitor.matching.ukrainian)."""

from __future__ import annotations

import pytest

from monitor.matching.multilingual import UseEmbedder
from monitor.matching.ukrainian import UKRAINIAN_VERSION, russian_spelling


@pytest.mark.parametrize(("ukrainian", "russian"), [
    # (a text is respelt only when it has a letter that only Ukrainian writes: і ї є ґ)
    # glossary words, with the case of the original kept (all capitals stay capitals)
    ("Протести в Києві", "Протесты в Киеве"),
    ("Західні НУО готували ґрунт для перевороту", "Западные НУО готовили почву для переворота"),
    ("Він каже, що це правда", "Он говорит, что это правда"),
    # endings: -ння, -ів, the instrumental -єю, the hard -их, the infinitive -ати
    ("рішення", "решение"), ("протестів", "протестов"), ("зброєю", "зброей"),
    ("і нових", "и новых"), ("і планувати", "и плановать"),
    # prefixes and letters: під- / ви-, -ськ-, е at the start, the apostrophe
    ("підготовка", "подготовка"), ("і вибори", "и выборы"),
    ("і американський", "и американский"), ("економіка", "экономика"), ("об'єкт", "объект"),
    # a past plural keeps its и: платили, not платилы
    ("і платили", "и платили"),
])
def test_ukrainian_words_take_their_russian_form(ukrainian: str, russian: str) -> None:
    assert russian_spelling(ukrainian) == russian


@pytest.mark.parametrize("text", [
    "Протесты в Киеве организовали западные фонды.",  # Russian: no Ukrainian letters
    "Proteste in Kiew, 2024",
    "Беларусь і Украіна: ўсе навіны",  # Belarusian writes і as well, but also ў
])
def test_other_languages_are_left_alone(text: str) -> None:
    assert russian_spelling(text) == text


def test_the_respelling_is_part_of_the_model_id() -> None:
    # Stored vectors of Ukrainian text change with the respelling, so they must be re-embedded.
    assert UseEmbedder.model_id == f"use-multilingual-v3|uk={UKRAINIAN_VERSION}"
