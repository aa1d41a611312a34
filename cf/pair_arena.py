"""Every compiled co-occurrence row of a catalog, laid end to end in two flat arrays.

Row n (a catalog row) holds its pairs as (catalog rows, weights) at
    columns[starts[n] : starts[n] + lengths[n]],  weights[same],   lengths[n] = -1: not compiled
so a batch's scores read each user's rows where they lie, in one compiled pass, with no per-row
arrays gathered and concatenated first. A changed row is written again at the end and its old
place left stale; when the arena is full, the live rows are copied, packed, into fresh arrays of
twice their size, so it holds at most about twice the live pairs. Fresh arrays, not the old ones
rewritten: a view handed out earlier keeps the data it was given.

The arrays lie in anonymous mappings of their own (`_pages`), not in the process's heap: while a
catalog's rows fill, each arena is larger than the one it replaces, and from the heap every
replaced arena left a hole of a few megabytes that the next, larger one did not fit, so the
heap, and a worker's RSS, grew by such holes for minutes. A mapping goes back to the kernel
whole when its last view goes.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import numpy.typing as npt

from cf.compiled import compiled

F32 = npt.NDArray[np.float32]
Ints = npt.NDArray[np.intp]
MIN_CAPACITY = 4096  # pairs


def _pages(n: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """(n,) zeros of `dtype` in an anonymous mapping of their own (the kernel zeroes its pages)."""
    return np.frombuffer(mmap.mmap(-1, max(n, 1) * np.dtype(dtype).itemsize), dtype, count=n)


class PairArena:
    def __init__(self, rows: int = 0) -> None:
        self.starts = np.zeros(rows, np.intp)  # (N,) where row n begins
        self.lengths = np.full(rows, -1, np.intp)  # (N,) its pairs, -1: not compiled
        self.columns: Ints = _pages(MIN_CAPACITY, np.intp)  # (capacity,) catalog rows paired with
        self.weights: F32 = _pages(MIN_CAPACITY, np.float32)  # (capacity,) their weights w_jn
        self.used = 0  # slots written, live and stale
        self.live = 0  # slots of compiled rows

    def compiled(self, n: int) -> bool:
        return bool(self.lengths[n] >= 0)

    def row(self, n: int) -> tuple[Ints, F32]:
        """(catalog rows, weights) of compiled row n: views into the arena."""
        start, length = int(self.starts[n]), int(self.lengths[n])
        return self.columns[start : start + length], self.weights[start : start + length]

    def drop(self, n: int) -> None:
        """Row n changed: its slots become stale until it is compiled again."""
        if self.lengths[n] > 0:
            self.live -= int(self.lengths[n])
        self.lengths[n] = -1

    def put(self, n: int, columns: Ints, weights: F32) -> tuple[Ints, F32]:
        """Row n compiled to these (L,) catalog rows and (L,) weights; returns its views."""
        self.drop(n)
        length = columns.size
        if self.used + length > self.columns.size:
            self._make_room(length)
        start = self.used
        self.columns[start : start + length] = columns
        self.weights[start : start + length] = weights
        self.starts[n], self.lengths[n] = start, length
        self.used += length
        self.live += length
        return self.row(n)

    def _make_room(self, length: int) -> None:
        """Fresh arrays holding the live rows packed, sized for twice the live pairs and the
        `length` to come (at least `MIN_CAPACITY`)."""
        capacity = max(MIN_CAPACITY, 2 * (self.live + length))
        columns: Ints = _pages(capacity, np.intp)  # (capacity,)
        weights: F32 = _pages(capacity, np.float32)  # (capacity,)
        at = 0
        for n in np.flatnonzero(self.lengths > 0).tolist():
            start, size = int(self.starts[n]), int(self.lengths[n])
            columns[at : at + size] = self.columns[start : start + size]
            weights[at : at + size] = self.weights[start : start + size]
            self.starts[n] = at
            at += size
        self.columns, self.weights, self.used = columns, weights, at


@compiled
def scatter_pairs(out: npt.NDArray[np.float64], users: Ints, factors: npt.NDArray[np.float64], rows: Ints,
                  starts: Ints, lengths: Ints, columns: Ints, weights: F32, position: Ints) -> None:
    """out[users[p], n] += factors[p] w_jn for each (user, recent item) p with j = rows[p] and
    each pair (n, w_jn) of j's arena row, in float64; n through `position` when it is not empty
    (-1: dropped). One pass over the pairs where they lie."""
    for p in range(users.size):
        b, f, j = users[p], factors[p], rows[p]
        for q in range(starts[j], starts[j] + lengths[j]):
            n = columns[q] if position.size == 0 else position[columns[q]]
            if n >= 0:
                out[b, n] += f * weights[q]


def warm_up() -> None:
    """Compile `scatter_pairs` (or load it from numba's cache) now, not in the first batch's time."""
    one = np.zeros(1, np.intp)
    scatter_pairs(np.zeros((1, 2)), one, np.ones(1), one, one, np.ones(1, np.intp), one,
                  np.ones(1, np.float32), np.zeros(0, np.intp))
