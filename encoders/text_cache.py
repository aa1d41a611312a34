"""An LRU cache in front of any encoder: search queries and re-sent item texts repeat."""

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
        self._vectors: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()  # text -> (D,)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(N,) texts -> (N, D) float32; the distinct missing texts go to `inner` in one call."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        fresh = self.inner.encode(missing) if missing else np.empty((0, self.dim), np.float32)  # (M, D)
        found = dict(zip(missing, fresh, strict=True))
        out = np.empty((len(texts), self.dim), dtype=np.float32)  # (N, D)
        for row, text in enumerate(texts):
            vector = found.get(text)
            if vector is None:
                vector = self._vectors[text]
                self._vectors.move_to_end(text)
            out[row] = vector
        for text, vector in found.items():
            self._vectors[text] = vector
            if len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)
        return out
