"""Compiled co-occurrence rows laid end to end (cf/pair_arena.py): what is put is read back,
through rewrites and compactions, and the scores' pass reads the rows where they lie."""

from __future__ import annotations

import numpy as np

from cf.pair_arena import MIN_CAPACITY, PairArena, scatter_pairs


def row(seed: int, length: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.choice(n_items, size=length, replace=False).astype(np.intp),  # (L,) catalog rows
            rng.random(length).astype(np.float32))  # (L,) weights


def test_rows_read_back_through_rewrites_and_compactions() -> None:
    n_items, longest = 200, 120
    arena = PairArena(n_items)
    expected: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    rng = np.random.default_rng(0)
    compactions = 0
    for step in range(400):  # far more written than MIN_CAPACITY: the arena fills and is packed
        n = int(rng.integers(n_items))
        if step % 7 == 0:
            arena.drop(n)
            expected.pop(n, None)
            continue
        columns, weights = row(step, int(rng.integers(0, longest + 1)), n_items)
        before = arena.columns
        others = [k for k in expected if k != n]
        held = {k: arena.row(k) for k in others[:3]}  # views handed out before the put
        got = arena.put(n, columns, weights)
        compactions += arena.columns is not before
        for k, (c, w) in held.items():  # keep their data, packed or not
            np.testing.assert_array_equal(c, expected[k][0])
            np.testing.assert_array_equal(w, expected[k][1])
        expected[n] = (columns, weights)
        np.testing.assert_array_equal(got[0], columns)
        for k, (c, w) in expected.items():
            assert arena.compiled(k)
            np.testing.assert_array_equal(arena.row(k)[0], c)
            np.testing.assert_array_equal(arena.row(k)[1], w)
        assert arena.live == sum(c.size for c, _ in expected.values())
        assert arena.used <= arena.columns.size <= max(MIN_CAPACITY, 2 * (arena.live + longest))
    assert compactions >= 3
    assert not any(arena.compiled(n) for n in range(n_items) if n not in expected)


def test_scores_pass_equals_the_dense_sum() -> None:
    n_items, n_users = 30, 4
    arena = PairArena(n_items)
    dense = np.zeros((n_items, n_items))  # (N, N) w_jn
    for j in range(n_items):
        columns, weights = row(100 + j, 1 + j % 9, n_items)
        arena.put(j, columns, weights)
        dense[j, columns] = weights
    arena.put(3, *row(999, 5, n_items))  # rewritten: the stale slots are never read
    dense[3] = 0.0
    columns, weights = arena.row(3)
    dense[3, columns] = weights
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(n_users), 5)  # (P,) each user's 5 recent items
    rows = rng.integers(0, n_items, size=users.size).astype(np.intp)  # (P,) j
    factors = rng.random(users.size)  # (P,)
    expected = np.zeros((n_users, n_items))
    for b, j, f in zip(users, rows, factors, strict=True):
        expected[b] += f * dense[j]
    out = np.zeros((n_users, n_items))
    scatter_pairs(out, users, factors, rows, arena.starts, arena.lengths, arena.columns, arena.weights,
                  np.zeros(0, np.intp))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-9)
    cols = np.array([2, 7, 11], np.intp)  # (M,) through a row -> column map
    position = np.full(n_items, -1, np.intp)
    position[cols] = np.arange(cols.size)
    some = np.zeros((n_users, cols.size))
    scatter_pairs(some, users, factors, rows, arena.starts, arena.lengths, arena.columns, arena.weights,
                  position)
    np.testing.assert_allclose(some, expected[:, cols], rtol=1e-6, atol=1e-9)
