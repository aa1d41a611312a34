"""Ranking quality of one target among scored items: rank, HR@k, NDCG@k, MRR@k."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


def rank_of(scores: npt.NDArray[np.float32], target: int) -> int:
    """0-based rank of `target` when items are ordered by score, best first, ties by index
    (the order `cf.scoring.top_k` serves). Excluded items carry -inf."""
    s_t = scores[target]
    return int(np.count_nonzero(scores > s_t) + np.count_nonzero(scores[:target] == s_t))


def ranks_of(scores: npt.NDArray[np.float32], target: int) -> npt.NDArray[np.intp]:
    """(M,) `rank_of` for each row of (M, N) scores."""
    s_t = scores[:, target : target + 1]  # (M, 1)
    return ((scores > s_t).sum(axis=1) + (scores[:, :target] == s_t).sum(axis=1)).astype(np.intp)


def top_indices(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """The k best item indices of (..., N) scores along the last axis, unordered: enough for
    coverage."""
    k = min(k, scores.shape[-1])
    return np.argpartition(-scores, k - 1, axis=-1)[..., :k]


@dataclass
class RankingTally:
    """Running HR@k, NDCG@k and MRR@k over evaluated targets.

    HR@k = mean [rank < k];  NDCG@k = mean [rank < k] / log2(rank + 2);  MRR@k = mean [rank < k] / (rank + 1)
    (one relevant item per target, so the ideal DCG is 1)."""

    k: int = 10
    n: int = 0
    hits: float = 0.0
    ndcg: float = 0.0
    mrr: float = 0.0
    hits_over_time: list[int] = field(default_factory=list)

    def add(self, rank: int) -> None:
        self.n += 1
        hit = rank < self.k
        self.hits_over_time.append(int(hit))
        if hit:
            self.hits += 1
            self.ndcg += 1.0 / math.log2(rank + 2)
            self.mrr += 1.0 / (rank + 1)

    def summary(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"hr": self.hits / n, "ndcg": self.ndcg / n, "mrr": self.mrr / n, "n": self.n}


def paired_hits(a: list[int], b: list[int]) -> dict[str, float]:
    """Two methods' hits (0/1) on the same targets: how many only `a` hit, how many only `b`,
    and the two-sided sign test on those discordant targets (normal approximation):

        z = (n_a - n_b) / sqrt(n_a + n_b),   p = erfc(|z| / sqrt(2))

    Both hit or both missed says nothing about which is better."""
    if len(a) != len(b):
        raise ValueError("paired hits need the same targets")
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int((x & ~y).sum()), int((y & ~x).sum())
    n = only_a + only_b
    z = (only_a - only_b) / math.sqrt(n) if n else 0.0
    return {"only_a": only_a, "only_b": only_b, "z": round(z, 3), "p": math.erfc(abs(z) / math.sqrt(2))}
