"""The `[matching] backend` setting: what "auto" picks per CPU, and bfloat16 on torch."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from monitor.config import load_settings
from monitor.matching import backends
from monitor.matching.embedders import DEFAULT_MODEL, Embedder, SentenceTransformerEmbedder
from monitor.matching.onnx_embedder import OnnxEmbedder
from monitor.matching.stage import configured_embedder

SAPPHIRE_RAPIDS = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ICE_LAKE = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
SENTENCES = [
    "NATO is encircling Russia with military bases and plans to attack it.",
    "The central bank kept interest rates unchanged on Tuesday.",
    "Les vaccins contiennent des puces qui suivent les personnes vaccinées.",
    "Officials said the flood barriers held through the night after days of rain upstream.",
]


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: test\n{flags}\nprocessor\t: 1\n{flags}", encoding="utf-8")
    return path


def test_auto_takes_bfloat16_only_where_the_cpu_has_amx(tmp_path: Path) -> None:
    assert backends.resolve("auto", cpuinfo(tmp_path, SAPPHIRE_RAPIDS)) == "torch-bf16"
    # AVX-512 BF16 without AMX, or no bfloat16 at all, ran slower than float32: ONNX there.
    assert backends.resolve("auto", cpuinfo(tmp_path, ICE_LAKE)) == "onnx"
    assert backends.resolve("auto", tmp_path / "no-such-file") == "onnx"  # not Linux


def test_a_named_backend_is_kept_and_bfloat16_without_amx_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("torch", "onnx", "onnx-int8"):
        assert backends.resolve(name, cpuinfo(tmp_path, ICE_LAKE)) == name
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="monitor.matching.backends"):
        assert backends.resolve("torch-bf16", cpuinfo(tmp_path, ICE_LAKE)) == "torch-bf16"
    assert "without AMX" in caplog.text
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        backends.resolve("cuda")


def test_the_setting_picks_the_embedder_and_bfloat16_keeps_the_model_id(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[matching]\nmultilingual_model = ""\n', encoding="utf-8")
    settings = load_settings(config)
    assert settings.file.matching.backend == "auto"
    default = configured_embedder(settings)  # nothing is loaded yet: the type says which backend
    expected = SentenceTransformerEmbedder if backends.has_amx_bf16() else OnnxEmbedder
    assert type(default) is expected
    config.write_text('[matching]\nbackend = "torch-bf16"\nmultilingual_model = ""\n', encoding="utf-8")
    bf16 = configured_embedder(load_settings(config))
    assert isinstance(bf16, SentenceTransformerEmbedder) and bf16.bfloat16
    # Stored vectors stay valid across torch, torch-bf16 and onnx: no re-embedding on a switch.
    assert bf16.model_id == DEFAULT_MODEL


def test_bfloat16_vectors_are_the_float32_ones_to_rounding(default_embedder: Embedder) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bf16 = SentenceTransformerEmbedder(bfloat16=True)
    # Emulated bfloat16 (no AMX) is slow; two sentences still say it.
    sentences = SENTENCES if backends.has_amx_bf16() else SENTENCES[:2]
    vectors = bf16.embed(sentences, "query")
    reference = default_embedder.embed(sentences, "query")
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float((vectors * reference).sum(axis=1).min()) > 0.999
    # The ranking matching relies on survives: each sentence is closest to its own float32 vector.
    assert (vectors @ reference.T).argmax(axis=1).tolist() == list(range(len(vectors)))
    # Autocast is per thread: a float32 model in the same process is untouched.
    assert float((default_embedder.embed(sentences[:1], "query") * reference[:1]).sum()) > 0.99999
