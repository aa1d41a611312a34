"""Why an item is in a user's list: the user's own items that speak for it, and the signals.

A history item h speaks for a recommended item j with

    c(h, j) = cos(e_h, e_j) * r^(l_h - 1)

where l_h = 1 for the user's newest item and r is the co-occurrence recency decay: similarity
times how much that item still counts (the state keeps item ids in order, not their times, so
recency rank stands in for the decayed weight). The up to three items with the largest positive
c are the explanation; the signals are the item's standardised scores (z) in the blend.

`speaking_items` is the reference in numpy arrays; the worker runs `speaking_rows`, the same choice
compiled, reading the catalog's rows where they are (no (B, H, D) copy of the users' histories).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from cf.best_kept import keep_best
from cf.compiled import compiled, compiled_sums

F32 = npt.NDArray[np.float32]
EXPLAIN_ITEMS = 3
EXPLAIN_WINDOW = 20  # the newest history items considered
Ints = npt.NDArray[np.intp]


class Because(NamedTuple):  # a tuple: a batch's lists make hundreds of these
    interest: int  # which of the user's interest vectors the item came from (one per user today)
    history: tuple[str, ...]  # up to three of the user's items that speak for it, strongest first
    components: dict[str, float]  # each signal's standardised score (z), as published: 4 decimals

    def to_json(self) -> dict[str, object]:  # the history stays a tuple: JSON writes it as an array
        return {"interest": self.interest, "history": self.history, "components": self.components}


def speaking_items(items: F32, history: F32, history_ids: Sequence[Sequence[str]] | npt.NDArray[np.object_],
                   recency_decay: float, top: int = EXPLAIN_ITEMS) -> list[list[tuple[str, ...]]]:
    """For B users' K listed items each, up to `top` of the user's history ids by c(h, j) > 0,
    strongest first. items: (B, K, D) unit vectors; history: (B, H, D) unit vectors, each user's
    newest last, zero rows where a user has fewer (they never speak); history_ids: (B, H), lists
    or an object array."""
    b, _, _ = items.shape
    h = history.shape[1]
    if h == 0:
        return [[() for _ in range(items.shape[1])] for _ in range(b)]
    recency = np.power(np.float32(recency_decay), np.arange(h - 1, -1, -1, dtype=np.float32))  # (H,)
    c = np.matmul(items, history.transpose(0, 2, 1)) * recency[None, None, :]  # (B, K, H)
    order = np.argsort(-c, axis=2, kind="stable")[:, :, :top]  # (B, K, top)
    # best first, so the positive ones are a prefix of each row
    positives = (np.take_along_axis(c, order, axis=2) > 0).sum(axis=2).tolist()  # (B, K)
    if isinstance(history_ids, np.ndarray):
        named = history_ids  # (B, H) ids
    else:
        named = np.empty((b, h), dtype=object)
        named[:] = [list(ids) for ids in history_ids]
    picked = named[np.arange(b)[:, None, None], order].tolist()  # (B, K, top) ids
    return [[tuple(row[:n]) for row, n in zip(user_rows, user_n, strict=True)]
            for user_rows, user_n in zip(picked, positives, strict=True)]


def speaking_rows(matrix: F32, listed: Ints, tails: Ints, ends: Ints, recency_decay: float,
                  top: int = EXPLAIN_ITEMS) -> tuple[Ints, Ints]:
    """`speaking_items` from catalog rows: matrix (N, D) unit item vectors; listed (B, L) the
    rows of each user's listed items (-1: padding, explained by nothing); tails (T,) every
    user's newest history rows, oldest first, user b's at tails[ends[b]:ends[b + 1]] (-1: an item
    not in the catalog, which never speaks and does not count for recency). Returns (B, L, top)
    the places in `tails` of the items that speak for each listed item, strongest first (-1
    after them), and (B, L) how many there are. c is summed in vector lanes, as BLAS does: an order
    that differs from the float32 reference's is one that rounding decided."""
    return _speaking(matrix, np.ascontiguousarray(listed, np.intp), np.ascontiguousarray(tails, np.intp),
                     np.ascontiguousarray(ends, np.intp), float(recency_decay), top)


@compiled
def _speaking(matrix: F32, listed: Ints, tails: Ints, ends: Ints, decay: float,
              top: int) -> tuple[Ints, Ints]:
    b_n, length = listed.shape
    picked = np.full((b_n, length, top), -1, np.intp)  # (B, L, top)
    counts = np.zeros((b_n, length), np.intp)  # (B, L)
    best = np.empty(max(top, 1), np.float64)  # (top,) strongest first
    for b in range(b_n):
        known = 0
        for p in range(ends[b], ends[b + 1]):
            known += tails[p] >= 0
        for j in range(length):
            item = listed[b, j]
            if item < 0:
                continue
            filled = 0
            rank = known  # l_h - 1 of the next known history item, oldest first
            for p in range(ends[b], ends[b + 1]):
                h = tails[p]
                if h < 0:
                    continue
                rank -= 1
                c = _dot(matrix[item], matrix[h]) * decay**rank  # c(h, j) = cos(e_h, e_j) r^(l_h - 1)
                if c > 0.0:  # equal c: the older item stays first, as a stable sort
                    filled = keep_best(best, picked[b, j], filled, top, c, p)
            counts[b, j] = filled
    return picked, counts


@compiled_sums
def _dot(a: F32, b: F32) -> np.float32:
    """(D,) . (D,) in float32, as BLAS sums it: in any order (vector lanes)."""
    total = np.float32(0.0)
    for d in range(a.size):
        total += a[d] * b[d]
    return total


def warm_up() -> None:
    """Compile the kernel (or load it from numba's cache) now, not in the first batch's time."""
    matrix = np.eye(3, dtype=np.float32)  # (N, D)
    speaking_rows(matrix, np.array([[0, -1]], np.intp), np.array([0, -1, 1], np.intp), np.array([0, 3]), 0.5)
