"""The ONNX backends: offline export, its cache, closeness to torch, the setting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError, ModelError
from monitor.matching import onnx_embedder
from monitor.matching.embedders import DEFAULT_MODEL, Embedder
from monitor.matching.onnx_embedder import OnnxEmbedder
from monitor.matching.stage import configured_embedder

SENTENCES = [
    "NATO is encircling Russia with military bases and plans to attack it.",
    "The central bank kept interest rates unchanged on Tuesday.",
    "Vaccines contain microchips that track the people who receive them.",
    "Officials said the flood barriers held through the night.",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> OnnxEmbedder:
    """The default model exported (float32, the default backend) once for this module, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = OnnxEmbedder(cache_dir=tmp_path_factory.mktemp("models"), int8=False)
    embedder.embed(["warm up"], "query")
    return embedder


def test_float_vectors_equal_torch_and_keep_its_id(
    exported: OnnxEmbedder, default_embedder: Embedder
) -> None:
    assert exported.model_id == default_embedder.model_id == DEFAULT_MODEL  # stored vectors stay valid
    vectors, reference = exported.embed(SENTENCES, "query"), default_embedder.embed(SENTENCES, "query")
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    assert np.abs(vectors - reference).max() < 1e-4
    long = " ".join(SENTENCES * 20)
    assert exported.max_tokens == default_embedder.max_tokens
    assert exported.count_tokens(long) == default_embedder.count_tokens(long)
    assert exported.truncate(long, 50) == default_embedder.truncate(long, 50)


def test_second_load_reads_the_cache_without_torch(
    exported: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(*_: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_embedder, "export", no_export)
    again = OnnxEmbedder(cache_dir=exported.cache_dir, int8=False)
    assert np.allclose(again.embed(SENTENCES, "query"), exported.embed(SENTENCES, "query"), atol=1e-6)
    assert again.torch._model is None  # sentence-transformers was never loaded
    assert [p.name for p in exported.cache_dir.iterdir()] == [exported.exported().name]


def test_long_passages_go_in_small_batches_with_the_same_vectors(
    exported: OnnxEmbedder, default_embedder: Embedder
) -> None:
    # Long Russian-like passages beside short ones: a batch of 32 at 256 tokens took ~900 MB.
    long = [" ".join(SENTENCES * 8) + f" {i}" for i in range(20)]
    texts = [*SENTENCES, *long, *SENTENCES]
    vectors = exported.embed(texts, "query")
    assert np.abs(vectors - default_embedder.embed(texts, "query")).max() < 1e-4
    alone = np.vstack([exported.embed([text], "query") for text in texts[:6]])
    assert np.abs(vectors[:6] - alone).max() < 1e-5  # a vector does not depend on its batch mates


def test_a_damaged_export_names_its_folder(exported: OnnxEmbedder, tmp_path: Path) -> None:
    damaged = OnnxEmbedder(cache_dir=tmp_path, int8=False)
    shutil.copytree(exported.exported(), damaged.exported())
    (damaged.exported() / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="delete the folder to export again"):
        damaged.embed(SENTENCES, "query")


def test_a_model_that_cannot_be_exported_runs_on_torch(
    exported: OnnxEmbedder, default_embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*_: object) -> list[str]:
        raise RuntimeError("operator not supported")

    monkeypatch.setattr(onnx_embedder, "_export_graph", unsupported)
    fallback = OnnxEmbedder(cache_dir=tmp_path)  # int8 would change the id: torch keeps its own
    assert fallback.model_id == default_embedder.model_id
    assert np.allclose(fallback.embed(SENTENCES, "query"), default_embedder.embed(SENTENCES, "query"),
                       atol=1e-5)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_int8_vectors_are_close_to_torch(default_embedder: Embedder, tmp_path: Path) -> None:
    int8 = OnnxEmbedder(cache_dir=tmp_path)
    assert int8.model_id == f"{DEFAULT_MODEL}@onnx-int8"  # not the same vectors: a model change
    vectors, reference = int8.embed(SENTENCES, "query"), default_embedder.embed(SENTENCES, "query")
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() > 0.99
    # The ranking that matching relies on survives: each sentence is closest to itself.
    assert (vectors @ reference.T).argmax(axis=1).tolist() == list(range(len(SENTENCES)))


def test_backend_setting(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[matching]\nbackend = "torch"\nmultilingual_model = ""\n', encoding="utf-8")
    assert configured_embedder(load_settings(config)).model_id == DEFAULT_MODEL  # no model load
    config.write_text('[matching]\nbackend = "onnx"\nmultilingual_model = ""\n', encoding="utf-8")
    onnx = configured_embedder(load_settings(config))
    assert isinstance(onnx, OnnxEmbedder) and onnx.cache_dir == tmp_path / "data" / "models"
    assert not onnx.int8
    config.write_text('[matching]\nbackend = "tensorrt"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.problems == [
        "matching.backend: Input should be 'auto', 'torch-bf16', 'onnx', 'onnx-int8' or 'torch'"]
