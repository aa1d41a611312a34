"""An LRU cache in front of any encoder: search queries and re-sent item texts repeat.

Its vectors live in one (capacity, D) float32 matrix, taken and touched when the cache is made:
the cache's memory is part of a worker's footprint from its start (10,000 texts of 384 floats:
15 MB), not something that grows for as long as new texts keep coming, and a cached vector never
keeps the encoder's whole output batch alive (a row of it would be a view into that batch).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from encoders.base import Encoder


class CachedEncoder:
    """Same vectors as `inner`; a text seen among the last `capacity` distinct texts is not re-encoded.
    Not thread-safe: the engine calls it from one encoder thread."""

    def __init__(self, inner: Encoder, capacity: int) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.version = inner.version
        self.backend: str = getattr(inner, "backend", type(inner).__name__)
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._slots: OrderedDict[str, int] = OrderedDict()  # text -> its row of `_matrix`, oldest first
        self._matrix = np.zeros((max(capacity, 0), self.dim), np.float32)  # (capacity, D)
        self._matrix.fill(0.0)  # touched now: resident from the start, never grown into

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(N,) texts -> (N, D) float32; the distinct missing texts go to `inner` in one call."""
        slots = self._slots
        missing = list(dict.fromkeys(t for t in texts if t not in slots))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        fresh = self.inner.encode(missing) if missing else np.empty((0, self.dim), np.float32)  # (M, D)
        found = {text: row for row, text in enumerate(missing)}  # text -> row of `fresh`
        out = np.empty((len(texts), self.dim), dtype=np.float32)  # (N, D)
        for row, text in enumerate(texts):
            at = found.get(text)
            if at is None:
                slot = slots[text]
                slots.move_to_end(text)
                out[row] = self._matrix[slot]
            else:
                out[row] = fresh[at]
        for text, at in found.items():
            self._store(text, fresh[at])
        return out

    def _store(self, text: str, vector: npt.NDArray[np.float32]) -> None:
        """`vector` (D,) copied into a free row, or the least recently used text's row."""
        if self.capacity <= 0:
            return
        if len(self._slots) < self.capacity:
            slot = len(self._slots)
        else:
            _, slot = self._slots.popitem(last=False)
        self._matrix[slot] = vector
        self._slots[text] = slot
