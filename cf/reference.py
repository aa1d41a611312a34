"""Slow, obviously-correct versions of the fast code, kept as test oracles."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cf.state import FloatVec


def decayed_sum(
    events: Sequence[tuple[FloatVec, float, int]],  # (vector, weight, ts_ms) in any order
    half_life_s: float,
) -> tuple[list[float], int]:
    """sum_i w_i * 2^(-(T - t_i)/h) * e_i with T = max t_i, element by element in float64."""
    newest = max(ts for _, _, ts in events)
    dim = len(events[0][0])
    total = [0.0] * dim
    for vector, weight, ts in events:
        factor = math.pow(2.0, -((newest - ts) / 1000.0) / half_life_s)
        for d in range(dim):
            total[d] += weight * factor * float(vector[d])
    return total, newest


def top_k_loop(
    item_ids: Sequence[str],
    items: FloatVec,  # (N, D) unit rows
    user: FloatVec,  # (D,)
    exclude: set[str],
    k: int,
    weight_sum: float | None = None,
) -> list[tuple[str, float]]:
    """Cosine to every item one at a time, sort, drop excluded, keep k. With a weight sum s,
    items and user are first centred explicitly: e_n - m and u - s m."""
    if weight_sum is not None:
        mean = [sum(float(v[d]) for v in items) / len(items) for d in range(len(user))]
        items = np.asarray([[float(v[d]) - mean[d] for d in range(len(user))] for v in items])
        user = np.asarray([float(user[d]) - weight_sum * mean[d] for d in range(len(user))])
    u_norm = math.sqrt(sum(float(x) * float(x) for x in user))
    scored = []
    for item_id, vec in zip(item_ids, items, strict=True):
        if item_id in exclude:
            continue
        v_norm = math.sqrt(sum(float(x) * float(x) for x in vec))
        dot = sum(float(a) * float(b) for a, b in zip(user, vec, strict=True))
        scored.append((item_id, dot / (u_norm * v_norm)))
    scored.sort(key=lambda pair: -pair[1])
    return scored[:k]

