"""Popularity baselines: all-time counts, and counts decayed with a half-life."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class Popularity:
    name = "popularity"

    def __init__(self, n_items: int) -> None:
        self.counts = np.zeros(n_items, dtype=np.float32)  # (N,) interactions so far

    def scores(self, user: str, now_ms: int) -> npt.NDArray[np.float32]:
        return self.counts.copy()

    def update(self, user: str, item: int, ts_ms: int, rating: float | None) -> None:
        self.counts[item] += 1.0


class DecayedPopularity:
    """p_i(t) = sum_j 2^(-(t - t_j)/h) over item i's interactions, kept lazily per item:
    value v_i at time s_i, read as v_i * 2^(-(t - s_i)/h)."""

    name = "decayed_popularity"

    def __init__(self, n_items: int, half_life_s: float) -> None:
        self.value = np.zeros(n_items, dtype=np.float64)  # (N,) decayed count at self.at
        self.at = np.zeros(n_items, dtype=np.float64)  # (N,) ms
        self.half_life_ms = half_life_s * 1000.0

    def scores(self, user: str, now_ms: int) -> npt.NDArray[np.float32]:
        age = np.maximum(now_ms - self.at, 0.0)  # (N,) ms
        return (self.value * np.exp2(-age / self.half_life_ms)).astype(np.float32)

    def update(self, user: str, item: int, ts_ms: int, rating: float | None) -> None:
        dt = max(ts_ms - self.at[item], 0.0)
        self.value[item] = self.value[item] * np.exp2(-dt / self.half_life_ms) + 1.0
        self.at[item] = max(self.at[item], ts_ms)
