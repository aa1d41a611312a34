"""Item-item co-occurrence KNN over each user's recent items (Sarwar et al. 2001, streaming form).

Each new interaction (u, i) adds 1 to C[i, j] and C[j, i] for the user's last L items j.
A user's score for item n is sum_{j in last L} C[j, n] / sqrt(c_j * c_n), with c the item counts
(cosine-normalised co-occurrence)."""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np
import numpy.typing as npt


class ItemCooccurrence:
    name = "itemknn"

    def __init__(self, n_items: int, recent: int = 20) -> None:
        self.pairs = np.zeros((n_items, n_items), dtype=np.float32)  # (N, N) co-occurrence counts
        self.counts = np.zeros(n_items, dtype=np.float32)  # (N,)
        self.recent: dict[str, deque[int]] = defaultdict(lambda: deque(maxlen=recent))

    def scores(self, user: str, now_ms: int) -> npt.NDArray[np.float32]:
        last = list(self.recent[user])
        if not last:
            return np.zeros_like(self.counts)
        inv = np.divide(1.0, np.sqrt(self.counts), out=np.zeros_like(self.counts),
                        where=self.counts > 0)  # (N,) 1/sqrt(c)
        rows = self.pairs[last] * inv[last, None]  # (L, N)
        return rows.sum(axis=0) * inv  # (N,)

    def update(self, user: str, item: int, ts_ms: int, rating: float | None) -> None:
        last = list(self.recent[user])
        if last:
            self.pairs[item, last] += 1.0
            self.pairs[last, item] += 1.0
        self.counts[item] += 1.0
        self.recent[user].append(item)
