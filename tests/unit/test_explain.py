from __future__ import annotations

import numpy as np

from cf.explain import speaking_items


def unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def test_the_items_that_speak_for_a_recommendation_are_similar_and_recent() -> None:
    history = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(1, 0.1, 0), unit(0, 0, 1)])  # oldest first
    ids = ["old-x", "y", "new-x", "z"]
    items = np.stack([unit(1, 0, 0), unit(0, 1, 0.2), unit(-1, -1, -1)])
    [got] = speaking_items(items[None], history[None], [ids], recency_decay=0.5)
    # for an x-like item the newer of two x items comes first: near-equal similarity, more weight
    assert got[0] == ("new-x", "old-x")
    assert got[1][0] == "y" and "old-x" not in got[1]
    assert got[2] == ()  # nothing of the user points that way
    # reference: c = cos * r^(l - 1), brute force
    c = {i: float(items[0] @ history[n]) * 0.5 ** (3 - n) for n, i in enumerate(ids)}
    assert list(got[0]) == [i for i in sorted(c, key=lambda i: -c[i]) if c[i] > 0][:3]
    assert speaking_items(items[None], np.zeros((1, 0, 3), np.float32), [[]], 0.5) == [[(), (), ()]]
    # a user with fewer items than the window: zero rows in front never speak
    padded = np.concatenate([np.zeros((2, 3), np.float32), history])[None]
    assert speaking_items(items[None], padded, [["", "", *ids]], 0.5) == [got]
