"""Item-item co-occurrence KNN over each user's recent items (Sarwar et al. 2001, streaming form).

Classic (`ItemCooccurrence`, the baseline): each interaction (u, i) adds 1 to C[i, j] and C[j, i]
for the user's last L = 20 items j; the score of item n is
    s_n = sum_{j in last L} C[j, n] / sqrt(c_j c_n)        c: item interaction counts
(cosine-normalised co-occurrence).

Sequential (`SequentialCooccurrence`, the hybrid's input): closer pairs count more and recent
items speak louder, as in session-based KNN (Ludewig & Jannach 2018, "Evaluation of
Session-based Recommendation Algorithms"). Interaction i after the user's last L = 20 items
j_1..j_L (j_L the newest) adds
    C[i, j_l] += p^(L - l)   and   C[j_l, i] += p^(L - l)        pair decay p = 0.9
and a user whose recent items are j_1..j_L (newest last) scores item n as
    s_n = sum_l r^(L - l) C[j_l, n] / sqrt(c_{j_l} c_n)          recency decay r = 0.8
"""

from __future__ import annotations

from collections import defaultdict, deque
from functools import lru_cache

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


@lru_cache(maxsize=1024)
def position_weights(n: int, decay: float) -> F32:
    """(n,) decay^(n - 1 - l) for l = 0..n-1: 1 for the newest (last), decay^(n-1) for the oldest.
    Cached and read-only: callers share it."""
    w = np.power(np.float32(decay), np.arange(n - 1, -1, -1, dtype=np.float32))
    w.flags.writeable = False
    return w


class ItemCooccurrence:
    """The dense form, for catalogs of thousands of items (an (N, N) float32 matrix)."""

    name = "itemknn"

    def __init__(self, n_items: int, recent: int = 20, pair_decay: float = 1.0,
                 recency_decay: float = 1.0) -> None:
        self.pairs = np.zeros((n_items, n_items), dtype=np.float32)  # (N, N) weighted co-occurrences
        self.counts = np.zeros(n_items, dtype=np.float32)  # (N,)
        self.inv_sqrt = np.zeros(n_items, dtype=np.float32)  # (N,) 1/sqrt(c), 0 where c = 0
        self.recent: dict[str, deque[int]] = defaultdict(lambda: deque(maxlen=recent))
        self.pair_decay, self.recency_decay = pair_decay, recency_decay

    def scores(self, user: str, now_ms: int) -> F32:
        last = list(self.recent.get(user, ()))
        if not last:
            return np.zeros_like(self.counts)
        inv = self.inv_sqrt  # (N,)
        w = position_weights(len(last), self.recency_decay) * inv[last]  # (L,)
        return ((w @ self.pairs[last]) * inv).astype(np.float32, copy=False)  # (N,)

    def update(self, user: str, item: int, ts_ms: int, rating: float | None) -> None:
        last = list(self.recent[user])
        if last:
            w = position_weights(len(last), self.pair_decay)  # (L,)
            np.add.at(self.pairs, (item, last), w)  # add.at: a repeated item adds twice
            np.add.at(self.pairs, (last, item), w)
        self.counts[item] += 1.0
        self.inv_sqrt[item] = 1.0 / np.sqrt(self.counts[item])
        self.recent[user].append(item)


class SequentialCooccurrence(ItemCooccurrence):
    name = "cooc"

    def __init__(self, n_items: int, window: int = 20, pair_decay: float = 0.9,
                 recency_decay: float = 0.8) -> None:
        super().__init__(n_items, recent=window, pair_decay=pair_decay, recency_decay=recency_decay)
