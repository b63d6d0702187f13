from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from monitor.matching.embedders import HashingEmbedder, Kind, Vectors
from monitor.matching.passages import split_passages, split_sentences


class CountingEmbedder(HashingEmbedder):
    """A HashingEmbedder that remembers every text it was asked to count."""

    def __init__(self, max_tokens: int) -> None:
        super().__init__(max_tokens=max_tokens)
        self.counted: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return super().count_tokens(text)

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        raise AssertionError("splitting must not embed")


def numbered(count: int, words: int = 4) -> list[str]:
    """`count` distinct sentences of `words` words each."""
    return [" ".join([f"s{i}"] + ["word"] * (words - 1)) + "." for i in range(count)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four… Five", ["One.", "Two!", "Three?", "Four…", "Five"]),
        (
            "Mr. Smith met Dr. Jones in the U.S. today. Then left.",
            ["Mr. Smith met Dr. Jones in the U.S. today.", "Then left."],
        ),
        (
            "Prices rose 3.5 percent, e.g. bread. Not milk.",
            ["Prices rose 3.5 percent, e.g. bread.", "Not milk."],
        ),
        ("He said: “No.” She agreed. «Да!» Он ушёл.", ["He said: “No.”", "She agreed.", "«Да!»", "Он ушёл."]),
        (
            "Он сказал, т.е. признал. В 2020 г. всё изменилось.",
            ["Он сказал, т.е. признал.", "В 2020 г. всё изменилось."],
        ),
        ("北约正在包围俄罗斯。这是谎言！真的吗？", ["北约正在包围俄罗斯。", "这是谎言！", "真的吗？"]),
        (
            "A headline without a stop\nA paragraph.\n\n  \nLast one",
            ["A headline without a stop", "A paragraph.", "Last one"],
        ),
        ("John F. Kennedy spoke. Version 2.0 shipped.", ["John F. Kennedy spoke.", "Version 2.0 shipped."]),
        ("", []),
        (" \n\t ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_empty_text_gives_the_title_alone() -> None:
    embedder = HashingEmbedder()
    assert split_passages(" Title ", "", embedder) == ["Title"]
    assert split_passages("", "  \n ", embedder) == []


def test_first_passage_is_title_and_lead_of_whole_sentences() -> None:
    embedder = HashingEmbedder(max_tokens=12)
    sentences = numbered(6)
    passages = split_passages("Breaking news here", " ".join(sentences), embedder)
    assert passages[0] == "Breaking news here\n" + " ".join(sentences[:2])  # 3 + 4 + 4 <= 12


def test_windows_fit_overlap_and_cover_the_text() -> None:
    embedder = HashingEmbedder(max_tokens=12)
    sentences = numbered(10)
    passages = split_passages("Title words", " ".join(sentences), embedder)
    assert all(passage and embedder.count_tokens(passage) <= 12 for passage in passages)
    windows = [split_sentences(passage) for passage in passages[1:]]
    assert windows[0][0] == sentences[1]  # repeats the lead's last sentence
    for previous, following in itertools.pairwise(windows):
        assert previous[-1] == following[0]
    assert windows[-1][-1] == sentences[-1]
    covered = {sentence for window in [split_sentences(passages[0]), *windows] for sentence in window}
    assert set(sentences) <= covered


def test_long_sentence_is_truncated_by_tokens() -> None:
    embedder = HashingEmbedder(max_tokens=5)
    long = "один два три четыре пять шесть семь восемь."
    passages = split_passages("Заголовок", f"{long} Короткое предложение.", embedder)
    assert passages == ["Заголовок", "один два три четыре пять", "Короткое предложение."]


def test_long_title_is_truncated() -> None:
    embedder = HashingEmbedder(max_tokens=3)
    assert split_passages("a b c d e", "", embedder) == ["a b c"]


def test_stops_at_max_passages() -> None:
    embedder = HashingEmbedder(max_tokens=8)
    passages = split_passages("Title", " ".join(numbered(50)), embedder, max_passages=4)
    assert len(passages) == 4
    with pytest.raises(ValueError, match="max_passages"):
        split_passages("Title", "Text.", embedder, max_passages=0)


def test_each_sentence_is_counted_once() -> None:
    embedder = CountingEmbedder(max_tokens=9)
    sentences = numbered(30)
    split_passages("Title", " ".join(sentences), embedder)
    assert sorted(embedder.counted) == sorted(["Title", *sentences])


def test_no_sentences_fit_beside_the_title() -> None:
    embedder = HashingEmbedder(max_tokens=4)
    passages = split_passages("one two three", "four five six seven. eight.", embedder)
    assert passages == ["one two three", "four five six seven.", "eight."]


def test_windows_can_be_shorter_than_the_model_allows() -> None:
    embedder = HashingEmbedder(max_tokens=100)
    text = " ".join(numbered(6))
    assert len(split_passages("Title", text, embedder)) == 1
    small = split_passages("Title", text, embedder, window_tokens=8)
    assert len(small) > 1 and all(embedder.count_tokens(passage) <= 8 for passage in small)
    whole = split_passages("Title", text, embedder)
    assert split_passages("Title", text, embedder, window_tokens=1000) == whole
