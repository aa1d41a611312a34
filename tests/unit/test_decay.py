from __future__ import annotations

import numpy as np
import pytest

from cf.decay import DecayConfig, decay_factor, decay_merge
from cf.reference import decayed_sum
from cf.state import UserState

H = 3600.0  # half-life, seconds
CONFIG = DecayConfig(half_life_s=H, history_size=3, seen_size=4)


def unit(rng: np.random.Generator, dim: int = 8) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def fold(events: list[tuple[np.ndarray, float, int]]) -> UserState:
    state = UserState.empty(8)
    for n, (v, w, ts) in enumerate(events):
        state = decay_merge(state, v, w, ts, CONFIG, event_id=f"e{n}")
    return state


def test_one_half_life_halves_the_old_interest() -> None:
    a, b = np.eye(8, dtype=np.float32)[:2]
    state = decay_merge(UserState.empty(8), a, 1.0, 0, CONFIG)
    state = decay_merge(state, b, 1.0, int(H * 1000), CONFIG)
    np.testing.assert_allclose(state.vector[:2], [0.5, 1.0], rtol=1e-6)
    assert state.updated_ms == int(H * 1000)


def test_matches_the_slow_reference_in_order() -> None:
    rng = np.random.default_rng(1)
    events = [(unit(rng), float(rng.uniform(-1, 3)), int(t)) for t in np.sort(rng.integers(0, 10**8, 40))]
    expected, newest = decayed_sum(events, H)
    state = fold(events)
    np.testing.assert_allclose(state.vector, expected, rtol=1e-4, atol=1e-5)
    assert state.updated_ms == newest


def test_out_of_order_gives_the_same_state_as_in_order() -> None:
    rng = np.random.default_rng(2)
    events = [(unit(rng), float(rng.uniform(0.5, 2)), int(rng.integers(0, 10**8))) for _ in range(30)]
    shuffled = [events[i] for i in rng.permutation(len(events))]
    expected, newest = decayed_sum(events, H)
    state = fold(shuffled)
    np.testing.assert_allclose(state.vector, expected, rtol=1e-4, atol=1e-5)
    assert state.updated_ms == newest
    # the weight sum is the same decayed sum with every vector set to 1
    ones, _ = decayed_sum([(np.ones(1, np.float32), w, ts) for _, w, ts in events], H)
    assert state.weight_sum == pytest.approx(ones[0], rel=1e-6)


def test_a_very_late_event_is_discounted_never_amplified() -> None:
    a, b = np.eye(8, dtype=np.float32)[:2]
    state = decay_merge(UserState.empty(8), a, 1.0, 10**12, CONFIG)
    late = decay_merge(state, b, 1.0, 0, CONFIG)  # dt = -10^12 ms
    assert np.all(np.isfinite(late.vector))
    assert late.vector[1] == pytest.approx(0.0, abs=1e-30)
    assert late.vector[0] == pytest.approx(1.0)
    assert late.updated_ms == 10**12


def test_dislike_pushes_the_interest_away() -> None:
    a = np.eye(8, dtype=np.float32)[0]
    state = decay_merge(UserState.empty(8), a, 1.0, 0, CONFIG)
    state = decay_merge(state, a, -2.0, 0, CONFIG)
    assert state.vector[0] == pytest.approx(-1.0)


def test_redelivered_event_is_merged_once() -> None:
    a = np.eye(8, dtype=np.float32)[0]
    once = decay_merge(UserState.empty(8), a, 1.0, 5, CONFIG, event_id="x", item_id="i")
    twice = decay_merge(once, a, 1.0, 5, CONFIG, event_id="x", item_id="i")
    assert twice is once


def test_history_is_bounded_and_keeps_the_latest_unique_items() -> None:
    state = UserState.empty(8)
    for n, item in enumerate(["a", "b", "c", "a", "d"]):
        state = decay_merge(state, None, 1.0, n, CONFIG, event_id=f"e{n}", item_id=item)
    assert state.history == ("c", "a", "d")
    assert state.seen == ("e1", "e2", "e3", "e4")


def test_decay_factor_is_one_at_zero_and_halves_per_half_life() -> None:
    assert decay_factor(0, H) == 1.0
    assert decay_factor(int(2 * H * 1000), H) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        DecayConfig(half_life_s=0)
