"""Which language a passage is written in, so that each pair of texts takes the right route.

py3langid ships its model in the wheel, so detection works offline; measured on one- to
three-sentence news passages in English, Russian, Ukrainian, German, French and Spanish it
was right 99-100% of the time and never confused Russian with Ukrainian (bench/crosslingual.py
names the data). A feed's declared language is not trusted: feeds mix languages and often
declare none or the wrong one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

ENGLISH = "en"
UNKNOWN = "und"  # too little text to tell
# The languages a passage may be told apart into: the multilingual model's sixteen, the
# languages of the shipped feeds, and their neighbours. Left to all 97 of its languages,
# py3langid called 9% of short English claims Nigerian Pidgin, Latin or Luxembourgish
# (bench/precision.py), which sent English pairs down the multilingual route.
LANGUAGES = (
    "en", "ru", "uk", "be", "de", "fr", "es", "it", "pt", "nl", "pl", "cs", "sk", "ro", "hu", "bg",
    "sr", "hr", "sl", "lt", "lv", "et", "fi", "sv", "da", "no", "el", "tr", "ka", "hy", "az", "kk",
    "ar", "fa", "he", "ur", "hi", "zh", "ja", "ko", "th", "vi", "id",
)
_LETTERS = re.compile(r"[^\W\d_]")
_MIN_LETTERS = 12  # a handful of letters (a name, an acronym) says nothing about a language

_lock = threading.Lock()
_identifier: Any = None


def detect(text: str) -> str:
    """The ISO 639-1 code of the text's language, or "und" when there is too little text."""
    if len(_LETTERS.findall(text[:2000])) < _MIN_LETTERS:
        return UNKNOWN
    language, _score = _model().classify(text)
    return str(language)


def detect_each(texts: Sequence[str]) -> list[str]:
    """`detect` for each text."""
    return [detect(text) for text in texts]


def _model() -> Any:
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                # Loads a 4 MB model once (about a second); classify() only reads it afterwards.
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
                identifier.set_languages(list(LANGUAGES))
                _identifier = identifier
    return _identifier
