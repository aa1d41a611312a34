"""Why an item is in a user's list: the user's own items that speak for it, and the signals.

A history item h speaks for a recommended item j with

    c(h, j) = cos(e_h, e_j) * r^(l_h - 1)

where l_h = 1 for the user's newest item and r is the co-occurrence recency decay: similarity
times how much that item still counts (the state keeps item ids in order, not their times, so
recency rank stands in for the decayed weight). The up to three items with the largest positive
c are the explanation; the signals are the item's standardised scores (z) in the blend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
EXPLAIN_ITEMS = 3
EXPLAIN_WINDOW = 20  # the newest history items considered


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
