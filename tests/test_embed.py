from __future__ import annotations

import os

# Before anything imports huggingface_hub, which reads this once: the tests never go online.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.matching.embedders import (
    ATTENTION_BUDGET,
    DEFAULT_MODEL,
    HashingEmbedder,
    ModelError,
    SentenceTransformerEmbedder,
    token_batches,
)

CYRILLIC = "Президент заявил, что НАТО окружает Россию военными базами и готовит нападение."


# HashingEmbedder: the stand-in the matcher's unit tests rely on.


def test_hashing_rows_are_unit_float32() -> None:
    vectors = HashingEmbedder(dimension=64).embed(["one two", "three four five", "Один два"], "query")
    assert vectors.shape == (3, 64)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_hashing_empty_inputs() -> None:
    embedder = HashingEmbedder()
    assert embedder.embed([], "passage").shape == (0, 256)
    assert not embedder.embed(["", "  ..."], "query").any()  # no words: matches nothing


def test_hashing_shared_words_score_high_unrelated_near_zero() -> None:
    claim, paraphrase, unrelated = HashingEmbedder().embed(
        [
            "NATO is surrounding Russia with military bases",
            "They say NATO is surrounding Russia with new military bases",
            "The football club signed a young striker from Brazil",
        ],
        "query",
    )
    assert claim @ paraphrase > 0.7
    assert abs(claim @ unrelated) < 0.3


def test_hashing_ignores_case_and_kind() -> None:
    embedder = HashingEmbedder()
    query = embedder.embed(["Vaccines Contain Microchips"], "query")
    passage = embedder.embed(["vaccines contain microchips"], "passage")
    assert np.array_equal(query, passage)


def test_hashing_is_the_same_in_another_process() -> None:
    # blake2b, not hash(): a vector stored by one process must match one computed by the next.
    code = (
        "import json; from monitor.matching.embedders import HashingEmbedder;"
        "print(json.dumps(HashingEmbedder(dimension=32).embed(['Один two three'], 'query')[0].tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    here = HashingEmbedder(dimension=32).embed(["Один two three"], "query")[0]
    assert np.allclose(json.loads(out.stdout), here)


def test_hashing_counts_and_truncates_by_words() -> None:
    embedder = HashingEmbedder()
    assert embedder.count_tokens("Президент заявил: НАТО — угроза!") == 4
    assert embedder.truncate("Президент заявил: НАТО — угроза!", 2) == "Президент заявил"
    assert embedder.truncate("one two", 5) == "one two"
    assert embedder.truncate("one two", 0) == ""


# SentenceTransformerEmbedder without a model: naming, prompts, errors.


def test_default_model_aliases_share_one_id() -> None:
    assert SentenceTransformerEmbedder().model_id == DEFAULT_MODEL
    assert SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2").model_id == DEFAULT_MODEL


def test_e5_prompts_come_from_the_name_without_loading() -> None:
    embedder = SentenceTransformerEmbedder("no-such-org/multilingual-E5-small")  # never loaded
    assert (embedder.query_prompt, embedder.passage_prompt) == ("query: ", "passage: ")
    assert embedder.model_id == "no-such-org/multilingual-E5-small|q=query: |p=passage: "


def test_explicit_prompts_win_and_enter_the_id() -> None:
    assert SentenceTransformerEmbedder("intfloat/e5-base", query_prompt="", passage_prompt="").model_id == (
        "intfloat/e5-base"
    )
    custom = SentenceTransformerEmbedder("/models/mini/", query_prompt="Q: ")
    assert custom.model_id == "/models/mini|q=Q: |p="


def test_unknown_model_raises_model_error_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers")  # its import alone takes seconds; not timed
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder("no-such-org/no-such-model")
    started = time.monotonic()
    with pytest.raises(ModelError, match="no-such-org/no-such-model") as caught:
        embedder.embed(["text"], "query")
    assert time.monotonic() - started < 10
    assert "offline" in str(caught.value)


def test_missing_model_folder_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        SentenceTransformerEmbedder(str(tmp_path / "missing")).count_tokens("text")


def test_concurrent_first_use_loads_once() -> None:
    loads: list[int] = []

    class Counting(SentenceTransformerEmbedder):
        def _load(self) -> Any:
            loads.append(1)
            time.sleep(0.05)  # long enough for the other threads to arrive mid-load
            return object()

    embedder = Counting()
    threads = [threading.Thread(target=embedder.loaded) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [1]


# The real default model, loaded once for the module.


@pytest.fixture(scope="module")
def model() -> Iterator[SentenceTransformerEmbedder]:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"], "query")
    yield embedder


def test_real_model_gives_unit_float32_rows(model: SentenceTransformerEmbedder) -> None:
    vectors = model.embed(["short", CYRILLIC, "a somewhat longer English sentence " * 10], "query")
    assert vectors.shape == (3, model.dimension) == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.embed([], "passage").shape == (0, 384)


def test_real_model_keeps_input_order(model: SentenceTransformerEmbedder) -> None:
    texts = ["a much longer sentence about the weather in spring", "short", "medium length text"]
    together = model.embed(texts, "query")
    alone = np.vstack([model.embed([text], "query") for text in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_long_passages_go_in_small_batches_with_the_same_vectors(model: SentenceTransformerEmbedder) -> None:
    # Long passages beside short ones: 32 at a time at 256 tokens grew the process by ~390 MB.
    texts = ["short", *[f"{CYRILLIC} {i} " * 12 for i in range(12)], "medium length text", CYRILLIC]
    together = model.embed(texts, "query")
    alone = np.vstack([model.embed([text], "query") for text in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_token_batches_keep_within_the_budget() -> None:
    lengths = [256, 12, 130, 64, 256, 300, 5, 64, 64, 128] * 7
    batches = token_batches(lengths, 32, ATTENTION_BUDGET)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 32 and (len(batch) == 1 or len(batch) * longest**2 <= ATTENTION_BUDGET)
    firsts = [lengths[batch[0]] for batch in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest first: like lengths pad little together
    assert [len(b) for b in token_batches([10] * 70, 32, ATTENTION_BUDGET)] == [32, 32, 6]
    assert token_batches([], 32, ATTENTION_BUDGET) == []


def test_real_model_ranks_paraphrase_above_unrelated(model: SentenceTransformerEmbedder) -> None:
    [narrative] = model.embed(["NATO is surrounding Russia with military bases"], "passage")
    paraphrase, unrelated = model.embed(
        [
            "The Western alliance keeps encircling Russia with new army bases along its borders.",
            "The football club won the cup final after a late penalty on Saturday.",
        ],
        "query",
    )
    assert narrative @ paraphrase > 0.5
    assert narrative @ paraphrase > narrative @ unrelated + 0.3


def test_real_model_counts_and_truncates_by_tokens(model: SentenceTransformerEmbedder) -> None:
    count = model.count_tokens(CYRILLIC)
    assert count > 3 * len(CYRILLIC.split())  # MiniLM's vocabulary spells Cyrillic out
    prefix = model.truncate(CYRILLIC, 20)
    assert CYRILLIC.startswith(prefix)
    assert model.count_tokens(prefix) == 20
    assert len(prefix) < len(CYRILLIC) // 2
    assert model.truncate(CYRILLIC, count) == CYRILLIC
    assert model.max_tokens == 254  # 256 positions less [CLS] and [SEP]
