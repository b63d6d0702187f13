"""Splitting an article into sentences and into passages the model reads whole."""

from __future__ import annotations

import re

from monitor.matching.embedders import Embedder

# Sentence ends: Latin terminators need a space, an opening quote or the end after them, so "3.5"
# stays whole; CJK terminators need nothing, as CJK text puts no space between sentences.
_END = re.compile(r"""[.!?…]+["'”’»)\]]*(?=[\s“«„]|$)|[。！？]+["'”’»」』)\]]*""")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # "U.S", "e.g", "т.е", or an initial as in "J."
_ABBREVIATIONS = frozenset(
    (
        *("mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "gen", "col", "lt", "sgt", "capt"),
        *("adm", "gov", "sen", "rep", "pres", "rev", "vs", "etc", "al", "inc", "ltd", "co", "corp"),
        *("dept", "approx", "vol", "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep"),
        *("sept", "oct", "nov", "dec", "mt", "ft"),
        # German, French, Spanish, Russian and Ukrainian ones common in news copy
        *("nr", "bzw", "vgl", "ca", "mme", "mlle", "sra", "dra", "str"),
        *("ул", "г", "гг", "им", "др", "пр", "тыс", "млн", "млрд", "руб", "см", "проф"),
    )
)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at terminal punctuation and at line breaks; empties dropped."""
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for end in _END.finditer(line):
            if end.group().startswith(".") and _is_abbreviation(line, start, end.start()):
                continue
            sentences.append(line[start : end.end()].strip())
            start = end.end()
        sentences.append(line[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _is_abbreviation(line: str, start: int, dot: int) -> bool:
    """Whether the word ending at `dot` is an abbreviation rather than a sentence's last word."""
    word = line[start:dot].rsplit(maxsplit=1)[-1:]
    if not word:
        return False
    token = word[0].lstrip("\"'“‘«([").lower()
    return token in _ABBREVIATIONS or _INITIALS.fullmatch(token) is not None


def split_passages(
    title: str,
    text: str,
    embedder: Embedder,
    max_passages: int = 16,
    window_tokens: int | None = None,
) -> list[str]:
    """Cut an article into at most `max_passages` passages of whole sentences that fit the model.

    `window_tokens` makes the windows shorter than the model allows: one claim in a long
    window is diluted by the sentences around it.

    Passage 0 is the title and the lead; the rest are windows over the following sentences,
    each overlapping the one before by a sentence so a claim split across them is still seen
    whole once. An empty article gives no passages.
    """
    if max_passages < 1:
        raise ValueError(f"max_passages must be at least 1, got {max_passages}")
    limit = min(embedder.max_tokens, window_tokens or embedder.max_tokens)
    [title], [title_tokens] = _counted([title.strip()], limit, embedder)
    sentences, counts = _counted(split_sentences(text), limit, embedder)
    lead_end = _fill(counts, 0, limit - title_tokens)
    first = "\n".join(part for part in (title, " ".join(sentences[:lead_end])) if part)
    passages = [first] if first else []
    end = lead_end
    while end < len(sentences) and len(passages) < max_passages:
        # Repeat the previous window's last sentence when it fits beside the next one, so a
        # claim that runs across the cut is still read whole once.
        overlap = end > 0 and counts[end - 1] + counts[end] <= limit
        start = end - 1 if overlap else end
        end = _fill(counts, start, limit)
        passages.append(" ".join(sentences[start:end]))
    return passages


def _counted(texts: list[str], limit: int, embedder: Embedder) -> tuple[list[str], list[int]]:
    """The texts, each cut to `limit` tokens, and their token counts; each text counted once."""
    counts = [embedder.count_tokens(text) for text in texts]
    fitted = [embedder.truncate(t, limit) if c > limit else t for t, c in zip(texts, counts, strict=True)]
    return fitted, [min(count, limit) for count in counts]


def _fill(counts: list[int], start: int, budget: int) -> int:
    """The end of the longest run of sentences from `start` whose counts sum within `budget`."""
    end = start
    while end < len(counts) and counts[end] <= budget:
        budget -= counts[end]
        end += 1
    return end
