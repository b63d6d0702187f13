"""Embedding vectors in the database: float32 little-endian bytes, one row per embedded text.

Writes are dialect upserts on their keys, so concurrent writers of the same key wait for each
other instead of failing; reads stream rows into one preallocated matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

Vectors = NDArray[np.float32]
STORED = np.dtype("<f4")  # how a vector is kept: float32, little-endian
Keys = tuple[Any, ...]  # the columns of a stored vector's row other than the vector
Float = TypeVar("Float", np.float32, np.float16)


def decode(blob: bytes) -> Vectors:
    """One stored vector as a float32 array."""
    return np.frombuffer(blob, dtype=STORED).astype(np.float32)


def replace_vectors(
    session: Session, table: Table, key: Mapping[str, object], position: str,
    texts: Sequence[str], vectors: Vectors,
) -> None:
    """Make the rows under `key` exactly these texts and vectors, numbered from 0 by `position`."""
    # Upsert, then drop the surplus: concurrent writers of the same key wait for each other
    # instead of failing on the primary key, and lock rows in ascending order.
    rows = [
        {**key, position: i, "text": text, "vector": vector.tobytes()}
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]
    insert = upsert(session, table)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[*key, position],
            set_={"text": insert.excluded.text, "vector": insert.excluded.vector},
        ),
        rows,
    )
    matching_key = [table.c[name] == value for name, value in key.items()]
    session.execute(delete(table).where(*matching_key, table.c[position] >= len(rows)))


def upsert(session: Session, table: Any) -> sqlite.Insert | postgresql.Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are written for SQLite and PostgreSQL, not {dialect}")


def checked_vectors(texts: Sequence[str], vectors: NDArray[Any]) -> Vectors:
    """The vectors as little-endian float32, after checking they fit the texts."""
    array = np.ascontiguousarray(vectors, dtype=STORED)
    if array.ndim != 2:
        raise ValueError(f"vectors must be 2-D (one row per text), got shape {array.shape}")
    if array.shape[0] != len(texts):
        raise ValueError(f"{len(texts)} texts but {array.shape[0]} vector rows")
    if array.shape[0] == 0 or array.shape[1] == 0:
        # Nothing stored would look like "not embedded yet": the item would come back forever.
        raise ValueError(f"no vectors (shape {array.shape}): give at least one text and vector")
    return array


def fill(
    rows: Iterable[Sequence[Any]], expected: int, model_id: str, dtype: type[Float]
) -> tuple[list[Keys], NDArray[Float]]:
    """Rows ending in a stored vector: the other columns, and the vectors as one matrix of `dtype`.

    The matrix is allocated once for the `expected` rows and filled as they stream in, so a large
    index never exists twice in memory (as blobs and as an array) while it loads; in float16 it
    is half the size (the narrative index keeps float16, monitor.matching.index).
    """
    keys: list[Keys] = []
    matrix = np.empty((0, 0), dtype=dtype)
    for row in rows:
        blob = row[-1]
        if not keys:
            matrix = np.empty((max(expected, 1), len(blob) // STORED.itemsize), dtype=dtype)
        if len(blob) != matrix.shape[1] * STORED.itemsize or len(blob) % STORED.itemsize:
            raise ValueError(f"stored vectors of model {model_id!r} differ in dimension")
        if len(keys) == len(matrix):  # rows were added after they were counted
            matrix = np.concatenate([matrix, np.empty_like(matrix)])
        matrix[len(keys)] = np.frombuffer(blob, dtype=STORED)
        keys.append(tuple(row[:-1]))  # not the row: it would keep the blob alive
    return keys, matrix[: len(keys)] if keys else matrix
