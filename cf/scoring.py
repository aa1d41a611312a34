"""Top-k by cosine between users' interests and every catalog item, consumed items excluded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cf.catalog import ItemCatalog

SCORER_VERSION = "cosine-decay/1"


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float


def normalise_rows(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(B, D) -> (B, D) with unit rows; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (B, 1)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def top_k(
    catalog: ItemCatalog,
    users: npt.NDArray[np.float32],  # (B, D) float32 interest vectors, any norm
    exclude: Sequence[Sequence[str]],  # per user: item ids never to recommend
    k: int,
) -> list[list[Scored]]:
    """For each user, the k catalog items with the highest cosine, best first.

    score[b, n] = <u_b / |u_b|, m_n>   (catalog rows m_n are unit vectors)
    A user with a zero interest vector gets an empty list: there is nothing to rank by.
    """
    n_items = len(catalog)
    if users.ndim != 2 or users.shape[1] != catalog.dim:
        raise ValueError(f"users must be (B, {catalog.dim}), got {users.shape}")
    if n_items == 0 or k <= 0:
        return [[] for _ in range(users.shape[0])]
    unit = normalise_rows(users.astype(np.float32, copy=False))  # (B, D)
    scores = unit @ catalog.matrix.T  # (B, N) float32 cosine
    results: list[list[Scored]] = []
    for b, excluded in enumerate(exclude):
        if not unit[b].any():
            results.append([])
            continue
        row = scores[b]  # (N,)
        rows_out = [r for r in (catalog.row_of(i) for i in excluded) if r is not None]
        if rows_out:
            row = row.copy()
            row[rows_out] = -np.inf
        available = n_items - len(rows_out)
        kk = min(k, available)
        if kk <= 0:
            results.append([])
            continue
        top = np.argpartition(-row, kk - 1)[:kk]  # (kk,) unordered
        top = top[np.lexsort((top, -row[top]))]  # best first; ties by row for determinism
        ids = catalog.ids
        results.append([Scored(ids[int(i)], float(row[i])) for i in top])
    return results
