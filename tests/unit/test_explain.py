from __future__ import annotations

import numpy as np

from cf.explain import speaking_items, speaking_rows


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


def test_the_compiled_choice_from_catalog_rows_is_the_references() -> None:
    """`speaking_rows` reads the catalog's rows in place: each user's newest rows, items no longer
    in the catalog (-1) left out of recency, padding (-1) explained by nothing. Held to the
    reference by the strengths c it picks (float64 here), not by an order that two values within
    rounding of each other could take either way."""
    rng = np.random.default_rng(7)
    n, d = 60, 16
    matrix = rng.normal(size=(n, d)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    tails = [rng.choice(n, size=size, replace=False) for size in (0, 1, 7, 20)]
    for t in tails[2:]:
        t[::3] = -1  # items gone from the catalog
    listed = rng.choice(n, size=(len(tails), 5))
    listed[1, 3:] = -1  # a short list
    ends = np.r_[0, np.cumsum([t.size for t in tails])]
    places, counts = speaking_rows(matrix, listed, np.concatenate(tails), ends, 0.8)
    flat = np.concatenate(tails)
    for b, tail in enumerate(tails):
        known = [int(h) for h in tail if h >= 0]
        items = matrix[np.maximum(listed[b], 0)][None]  # (1, L, d)
        history = matrix[known].reshape(1, len(known), d)  # (1, H, d)
        [names] = speaking_items(items, history, [[str(h) for h in known]], 0.8)
        recency = 0.8 ** np.arange(len(known) - 1, -1, -1)  # (H,) newest: 1
        for j in range(listed.shape[1]):
            got = [int(flat[p]) for p in places[b, j, : counts[b, j]]]
            assert places[b, j, counts[b, j] :].tolist() == [-1] * (3 - counts[b, j])
            if listed[b, j] < 0:
                assert got == []
                continue
            strengths = matrix[known].astype(np.float64) @ matrix[listed[b, j]] * recency  # (H,)
            c = dict(zip(known, strengths, strict=True))
            assert all(c[h] > -1e-6 for h in got)
            want = [c[int(h)] for h in names[j] if c[int(h)] > 1e-6]
            np.testing.assert_allclose([c[h] for h in got if c[h] > 1e-6], want, atol=1e-6)
    assert counts[0].tolist() == [0] * 5 and counts.sum() > 10
