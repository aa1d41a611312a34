"""Length-sorted batches: texts of similar length share a forward pass, so little is padding."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


def encode_sorted(
    texts: Sequence[str], batch_size: int, dim: int, encode_batch: Callable[[list[str]], F32]
) -> F32:
    """(N,) texts -> (N, D) float32 in input order; batches of `batch_size` texts sorted by length."""
    out = np.empty((len(texts), dim), dtype=np.float32)  # (N, D)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = encode_batch([texts[i] for i in rows])  # (B, D)
    return out
