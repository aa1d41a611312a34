from __future__ import annotations

import numpy as np
import pytest

from cf.cooccurrence import ItemCooccurrence, SequentialCooccurrence
from cf.hybrid import (
    COMPONENTS,
    TEXT,
    BlendPolicy,
    BlendWeights,
    best_first,
    best_first_rows,
    blend,
    blend_interests,
    blend_rows,
    fit_policy,
    fit_weights,
    grid_gains,
    new_item_picks,
    new_item_picks_rows,
    simplex_grid,
    stack,
    standardise,
)


def test_standardise_over_available_items_only() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 100.0]], np.float32)
    available = np.array([[True, True, True, False]])
    z = standardise(scores, available)
    np.testing.assert_allclose(z[0, :3], [-1.2247449, 0.0, 1.2247449], rtol=1e-5)
    assert z[0, 3] == 0.0
    flat = standardise(np.ones((1, 4), np.float32), available)
    assert not flat.any()  # a signal with nothing to say is all zeros, not NaN


def test_grid_gains_equal_brute_force_with_ties_against_the_target() -> None:
    # z in tenths and weights in fifths: the brute force ranks in exact integer arithmetic, so
    # every tie is a true tie, and a nonzero difference is at least 1/50, far from any rounding
    rng = np.random.default_rng(4)
    steps = 5
    points = (simplex_grid(3, steps) * steps).round().astype(np.int64)  # (G, 3) integers summing to 5
    grid = (points / steps).astype(np.float32)  # (G, 3)
    ties = 0
    for _ in range(40):
        tenths = rng.integers(-12, 13, size=(3, 40))  # (3, 40): few values, many ties
        z = (tenths / 10).astype(np.float32)  # (3, 40)
        available = rng.random(40) < 0.8
        target = int(rng.choice(np.flatnonzero(available)))
        got = grid_gains(z, target, available, grid, k=10)
        others = available & (np.arange(40) != target)
        for g, p in enumerate(points):
            margin = p @ (tenths[:, others] - tenths[:, [target]])  # (n,) exact integers
            ties += int((margin == 0).sum())
            rank = int((margin >= 0).sum())  # a tie counts against the target
            assert got[g] == pytest.approx(1 / np.log2(rank + 2) if rank < 10 else 0.0, abs=1e-6)
    assert ties > 100  # the cases do exercise ties


def test_grid_gains_a_tie_broken_only_by_rounding_is_a_tie() -> None:
    # at w = (1/2, 1/2) target 0 scores (0.6 + 0.0) / 2 and item 1 (0.2 + 0.4) / 2: a tie in exact
    # arithmetic that float32 rounding would break one way or the other; it counts against the target
    z = np.array([[0.6, 0.2], [0.0, 0.4]], np.float32)  # (C=2, N=2)
    grid = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]], np.float32)
    got = grid_gains(z, 0, np.ones(2, bool), grid, k=10)
    np.testing.assert_allclose(got, [1 / np.log2(3), 1.0, 1 / np.log2(3)], rtol=1e-6)


def test_fit_finds_the_signal_that_ranks_the_targets() -> None:
    rng = np.random.default_rng(5)
    n, cases = 50, 120
    targets = rng.integers(0, n, size=cases)
    z = rng.normal(size=(cases, len(COMPONENTS), n)).astype(np.float32)
    z[np.arange(cases), :, targets] = -100.0  # every other component puts the target last
    z[np.arange(cases), 2, targets] = 10.0  # component 2 (cooc) puts it first
    available = np.ones((cases, n), bool)
    grid = simplex_grid(len(COMPONENTS), 10)
    gains = np.stack([grid_gains(z[v], targets[v], available[v], grid, 10) for v in range(cases)])
    weights, ndcg = fit_weights(gains.astype(np.float64), grid)
    assert weights == BlendWeights(text=0.0, cf=0.0, cooc=1.0, popularity=0.0)
    assert ndcg == pytest.approx(1.0)
    policy, report = fit_policy(gains.astype(np.float64), np.full(cases, 50), grid)
    assert policy.weights[3] == weights
    assert policy.weights[:3] == BlendPolicy().weights[:3]  # buckets without cases keep the prior
    assert policy.weights[0] == BlendWeights(1.0, 0.0, 0.0, 0.0)  # nothing consumed: text alone
    assert [r["cases"] for r in report] == [0, 0, 0, cases, 0]


def test_policy_picks_weights_by_history_length() -> None:
    a, b = BlendWeights(1, 0, 0, 0), BlendWeights(0, 0, 0, 1)
    policy = BlendPolicy((10,), (a, b))
    np.testing.assert_array_equal(policy.bucket([0, 9, 10, 500]), [0, 0, 1, 1])
    z = stack({"text": np.array([[3.0, 1.0, 2.0]] * 2, np.float32),
               "popularity": np.array([[1.0, 3.0, 2.0]] * 2, np.float32)}, np.ones((2, 3), bool))
    scores = blend(z, policy, [3, 30], np.array([[True, True, False]] * 2))
    assert np.argmax(scores[0]) == 0 and np.argmax(scores[1]) == 1
    assert np.isneginf(scores[:, 2]).all()
    assert BlendPolicy.from_json(policy.to_json()) == policy


def test_sequential_cooccurrence_prefers_the_most_recent_items_neighbours() -> None:
    knn = SequentialCooccurrence(6)
    for user, seq in (("a", [0, 1]), ("b", [2, 3])):
        for item in seq:
            knn.update(user, item, 0, None)
    for item in (0, 2):  # u's older item 0, newer item 2
        knn.update("u", item, 0, None)
    scores = knn.scores("u", 0)
    assert scores[3] > scores[1] > 0  # 3 follows the newer item
    classic = ItemCooccurrence(6)
    for item in (0, 1, 0):  # a repeated item adds twice
        classic.update("r", item, 0, None)
    assert classic.pairs[0, 1] == 2.0 and classic.pairs[1, 0] == 2.0


def test_best_first_breaks_ties_by_index_even_at_the_cut() -> None:
    scores = np.array([0.5, 0.9, 0.5, -np.inf, 0.5, 0.1], np.float32)
    assert best_first(scores, np.arange(6), 3).tolist() == [1, 0, 2]
    assert best_first(scores, np.array([4, 2, 5]), 2).tolist() == [2, 4]


def test_new_item_picks_only_eligible_available_items() -> None:
    scores = np.array([3.0, 2.0, -np.inf, 1.0, 0.5, 0.4], np.float32)
    z_text = np.array([3.0, 3.0, 3.0, 3.0, 3.0, 0.0], np.float32)
    new = np.array([False, True, True, True, True, True])
    nothing = np.zeros(0, dtype=np.intp)
    assert new_item_picks(scores, z_text, new, nothing, 2, 2.0).tolist() == [1, 3]
    assert new_item_picks(scores, z_text, new, np.array([1]), 2, 2.0).tolist() == [3, 4]  # not in top
    assert new_item_picks(scores, z_text, np.zeros(6, bool), nothing, 2, 2.0).size == 0
    assert 5 not in new_item_picks(scores, z_text, new, nothing, 5, 2.0).tolist()  # off-topic


@pytest.mark.parametrize("seed", range(6))
def test_the_batched_top_k_and_picks_equal_the_row_by_row_ones(seed: int) -> None:
    """Scores drawn from a few integers (exact ties, at the cut too) or with no ties, -inf for
    consumed items,
    some rows with fewer available items than k: every row as `best_first` and `new_item_picks`
    rank it alone."""
    rng = np.random.default_rng(seed)
    b_n, n, k = 40, 30, 8
    scores = rng.integers(0, 6, size=(b_n, n)).astype(np.float32)  # (B, N)
    scores[::2] = rng.random((b_n // 2, n))  # half the rows without ties: the one-sort path
    consumed = rng.random((b_n, n)) < rng.choice([0.1, 0.8, 0.95], size=(b_n, 1))
    scores[consumed] = -np.inf
    z_text = rng.integers(-1, 4, size=(b_n, n)).astype(np.float32)
    new = rng.random(n) < 0.4
    top = best_first_rows(scores, k)  # (B, k)
    picks = new_item_picks_rows(scores, z_text, new, top, 2, 2.0)  # (B, 2)
    assert top.shape == (b_n, k) and picks.shape == (b_n, 2)
    for b in range(b_n):
        available = np.flatnonzero(np.isfinite(scores[b]))
        expected = best_first(scores[b], available, min(k, available.size))
        assert top[b][top[b] >= 0].tolist() == expected.tolist()
        assert (top[b][expected.size :] == -1).all()
        expected_picks = new_item_picks(scores[b], z_text[b], new, expected, 2, 2.0)
        assert picks[b][picks[b] >= 0].tolist() == expected_picks.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_the_blend_over_unpadded_rows_equals_the_padded_one(seed: int) -> None:
    """`blend_rows` and `RowBlend.chosen` against `blend_interests` on the (K, B, N) layout:
    users of 1 to 4 interests, consumed items, and exact ties between interests (chosen: the first)."""
    rng = np.random.default_rng(seed)
    b_n, n, k = 6, 40, 4
    counts = rng.integers(1, k + 1, b_n)  # (B,)
    counts[0] = max(counts[0], 2)
    user = np.repeat(np.arange(b_n), counts)  # (R,)
    z_text = rng.normal(size=(user.size, n)).astype(np.float32)  # (R, N)
    z_text[1] = z_text[0]  # the first user's first two interests tie everywhere
    log_share = np.log(rng.uniform(0.1, 1.0, user.size)).astype(np.float32)  # (R,)
    log_share[1] = log_share[0]
    z = rng.normal(size=(len(COMPONENTS), b_n, n)).astype(np.float32)  # (C, B, N)
    available = rng.random((b_n, n)) > 0.2  # (B, N)
    lengths = rng.integers(0, 200, b_n).tolist()
    policy = BlendPolicy((3, 50), (BlendWeights(0.4, 0.3, 0.2, 0.1), BlendWeights(0.1, 0.2, 0.3, 0.4),
                                   BlendWeights(0.25, 0.25, 0.25, 0.25)))
    padded = np.zeros((k, b_n, n), np.float32)  # (K, B, N)
    padded_share = np.full((k, b_n), -np.inf, np.float32)  # (K, B)
    starts = np.r_[0, np.cumsum(counts)[:-1]]  # (B,)
    for r, u in enumerate(user):
        padded[r - starts[u], u], padded_share[r - starts[u], u] = z_text[r], log_share[r]

    expected, chosen, z_chosen = blend_interests(z, padded, padded_share, policy, lengths, available)
    rows = blend_rows(z, z_text, user, log_share, policy, lengths, available)
    np.testing.assert_allclose(rows.scores, expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.isfinite(rows.scores), available)
    every = np.broadcast_to(np.arange(n), (b_n, n))  # (B, N)
    picked = rows.chosen(every)  # (B, N) rows
    # where two interests are within rounding of each other either may be taken; elsewhere the same
    per = np.sort(rows.per_row[np.minimum(starts[None, :] + np.arange(k)[:, None], user.size - 1)], axis=0)
    clear = (counts[:, None] == 1) | (np.abs(np.diff(per, axis=0)).min(axis=0) > 1e-4)  # (B, N)
    assert np.array_equal((picked - starts[:, None])[clear], chosen[clear])
    assert not np.any(picked[0] == 1)  # of the exact tie, the first
    np.testing.assert_allclose(z_text[picked, every][clear], z_chosen[TEXT][clear], rtol=1e-6)
    # the same rows' values read for a set of columns shared by every user (the new items' text z)
    cols = np.flatnonzero(rng.random(n) > 0.5)  # (M,)
    assert np.array_equal(rows.chosen_values(cols, z_text), z_text[picked[:, cols], cols[None, :]])
    assert np.array_equal(rows.chosen_values(np.arange(n), z_text), z_text[picked, every])
