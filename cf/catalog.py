"""The item catalog as one matrix: ids in rows, L2-normalised vectors, upserts and removals."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from cf.state import FloatVec


class ItemCatalog:
    """Item vectors in one contiguous (N, D) float32 matrix, for one matrix product per batch.

    Upsert replaces a row in place or appends one (amortised O(1), capacity doubles);
    removal moves the last row into the hole, so row order is not stable. The mean row
    m = (1/N) sum_n e_n is kept exact under both, for centred scoring.
    """

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._matrix = np.zeros((capacity, dim), dtype=np.float32)  # (cap, D) float32
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._sum = np.zeros(dim, dtype=np.float64)  # (D,) sum of rows
        self._centring: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None
        self.version = 0  # bumped whenever a row is added, replaced or moved
        self._changed: dict[str, None] | None = None  # ids upserted or removed, once tracked

    def track_changes(self) -> None:
        """Record the ids of upserted and removed items from now on, for `take_changes`."""
        if self._changed is None:
            self._changed = {}

    def take_changes(self) -> list[str]:
        """Ids upserted or removed since the last call (each once, oldest change first)."""
        if not self._changed:
            return []
        out, self._changed = list(self._changed), {}
        return out

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    @property
    def ids(self) -> list[str]:
        return self._ids

    @property
    def matrix(self) -> npt.NDArray[np.float32]:
        """(N, D) float32, rows L2-normalised; a view, valid until the next change."""
        return self._matrix[: len(self._ids)]

    @property
    def mean(self) -> npt.NDArray[np.float32]:
        """(D,) float32, the mean m of the unit rows (zero for an empty catalog)."""
        return self.centring[0]

    @property
    def centring(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(m, 1/|e_n - m|): the (D,) mean and the (N,) inverse norms of the centred rows
        (0 where a row equals the mean), recomputed once after a change.
        |e_n - m|^2 = 1 - 2 <e_n, m> + |m|^2 for unit rows e_n."""
        if self._centring is None:
            mean = (self._sum / max(len(self._ids), 1)).astype(np.float32)  # (D,)
            norms2 = 1.0 - 2.0 * (self.matrix @ mean) + float(mean @ mean)  # (N,)
            inv = np.divide(1.0, np.sqrt(np.maximum(norms2, 0.0)), out=np.zeros_like(norms2),
                            where=norms2 > 1e-12).astype(np.float32)  # (N,)
            self._centring = (mean, inv)
        return self._centring

    def row_of(self, item_id: str) -> int | None:
        return self._row.get(item_id)

    def rows_or_missing(self, item_ids: Iterable[str], count: int = -1) -> npt.NDArray[np.intp]:
        """(M,) the row of each of `item_ids`, -1 for an id not in the catalog (`count`: how many
        ids, when known). One C-level pass of dict lookups."""
        return np.fromiter(map(self._row.get, item_ids, itertools.repeat(-1)), np.intp, count)

    def vector(self, item_id: str) -> FloatVec | None:
        row = self._row.get(item_id)
        return None if row is None else self._matrix[row].copy()

    def upsert(self, item_id: str, vector: FloatVec) -> None:
        if vector.shape != (self.dim,):
            raise ValueError(f"item {item_id!r}: vector shape {vector.shape}, expected ({self.dim},)")
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError(f"item {item_id!r}: vector must be finite and non-zero")
        row = self._row.get(item_id)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:
                grown = np.zeros((2 * row, self.dim), dtype=np.float32)  # (2cap, D)
                grown[:row] = self._matrix
                self._matrix = grown
            self._ids.append(item_id)
            self._row[item_id] = row
        else:
            self._sum -= self._matrix[row]
        self._matrix[row] = vector / np.float32(norm)
        self._sum += self._matrix[row]
        self._centring = None
        self.version += 1
        if self._changed is not None:
            self._changed.pop(item_id, None)
            self._changed[item_id] = None

    def remove(self, item_id: str) -> bool:
        row = self._row.pop(item_id, None)
        if row is None:
            return False
        self._sum -= self._matrix[row]
        self._centring = None
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._ids[row] = moved
            self._row[moved] = row
        self._ids.pop()
        self._matrix[last] = 0.0
        self.version += 1
        if self._changed is not None:
            self._changed.pop(item_id, None)
            self._changed[item_id] = None
        return True
