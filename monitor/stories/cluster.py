"""Lead vectors into groups: neighbours found block by block, then average-linkage clustering.

Most articles in a window tell a story nobody else tells, so the similarity graph above the
threshold is sparse: its connected parts are small, and scikit-learn's agglomerative
clustering runs on each part alone instead of on the whole window (which would need the
full n x n distance matrix). Average linkage, unlike the connected parts themselves, does
not chain: two stories joined by one ambiguous article stay apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.matching.multilingual import UseEmbedder

Vectors = NDArray[np.float32]
Pairs = tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]
BLOCK = 2048  # rows compared at once: 2048 x 20,000 float32 similarities take 160 MB
DENSE_LIMIT = 3000  # a connected part larger than this is clustered on its sparse graph


def clustering_view(vectors: Vectors, model_id: str) -> Vectors:
    """The part of stored lead vectors that stories compare, as unit rows.

    A dual vector ([MiniLM | USE] / sqrt 2) is cut to its multilingual half: the English model
    scores any two Cyrillic texts alike, so its half would join unrelated Russian articles
    and keep a Russian retelling away from the English one (bench/stories.py measures both).
    """
    view = vectors
    if model_id.endswith("+" + UseEmbedder.model_id) and vectors.shape[1] > UseEmbedder.dimension:
        view = vectors[:, -UseEmbedder.dimension :]
    view = np.ascontiguousarray(view, dtype=np.float32)
    norms = np.linalg.norm(view, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: Vectors = view / norms
    return unit


def neighbours(left: Vectors, right: Vectors, threshold: float) -> Pairs:
    """Every (row of left, row of right, cosine) with cosine >= threshold; rows are unit vectors."""
    rows: list[NDArray[np.intp]] = []
    cols: list[NDArray[np.intp]] = []
    sims: list[NDArray[np.float32]] = []
    for start, block in _blocks(left):
        similarity = block @ right.T
        r, c = np.nonzero(similarity >= threshold)
        rows.append(r + start)
        cols.append(c)
        sims.append(similarity[r, c])
    if not rows:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)


def _blocks(matrix: Vectors) -> Iterator[tuple[int, Vectors]]:
    for start in range(0, len(matrix), BLOCK):
        yield start, matrix[start : start + BLOCK]


def clusters(vectors: Vectors, threshold: float, edges: Pairs | None = None) -> list[list[int]]:
    """Rows grouped so that each group's average pairwise cosine reaches `threshold`; singletons too.

    `edges` are the pairs of rows at or above `threshold` when the caller found them already.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vectors)
    if n == 0:
        return []
    rows, cols, _ = edges if edges is not None else neighbours(vectors, vectors, threshold)
    off_diagonal = rows != cols
    graph = coo_matrix((np.ones(int(off_diagonal.sum())), (rows[off_diagonal], cols[off_diagonal])),
                       shape=(n, n)).tocsr()
    count, labels = connected_components(graph, directed=False)
    groups: list[list[int]] = []
    for part in _parts(labels, count):
        if len(part) <= 2:
            groups.append(part.tolist())  # a pair is connected only when it is similar enough
        else:
            groups += _agglomerate(vectors[part], graph[part][:, part], threshold, part)
    return groups


def _parts(labels: NDArray[Any], count: int) -> list[NDArray[np.intp]]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(count)]


def _agglomerate(
    part_vectors: Vectors, graph: Any, threshold: float, part: NDArray[np.intp]
) -> list[list[int]]:
    from sklearn.cluster import AgglomerativeClustering

    cut = 1.0 - threshold
    if len(part) <= DENSE_LIMIT:
        distances = np.clip(1.0 - part_vectors @ part_vectors.T, 0.0, 2.0).astype(np.float64)
        model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                        distance_threshold=cut)
        labels = model.fit_predict(distances)
    else:  # only pairs above the threshold may merge: no n x n matrix for a giant part
        model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                        distance_threshold=cut, connectivity=graph)
        labels = model.fit_predict(part_vectors)
    found: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        found.setdefault(int(label), []).append(int(part[position]))
    return list(found.values())
