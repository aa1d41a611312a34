"""A user's searches as positions of their sequence: what the state keeps of them."""

from __future__ import annotations

import numpy as np

from cf.decay import DecayConfig
from cf.interests import InterestConfig, merge_event
from cf.searches import afters, remember
from cf.state import UserState


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)


def test_searches_count_the_items_consumed_since_and_the_latest_are_kept() -> None:
    kept = remember((), None, _unit(0), 2)  # a search
    kept = remember(kept, "a", _unit(1), 2)  # an item, with or without a vector, counts
    kept = remember(kept, None, _unit(2), 2)
    kept = remember(kept, "b", None, 2)
    assert [s.after for s in kept] == [2, 1]
    kept = remember(kept, None, _unit(3), 2)  # the oldest goes past 2
    assert [s.after for s in kept] == [1, 0]
    np.testing.assert_allclose(kept[1].vector, _unit(3), rtol=2**-11)  # kept at stored precision
    assert remember(kept, None, None, 2) is kept  # neither an item nor a text: nothing
    assert [s.after for s in remember(kept, "c", None, 2, horizon=2)] == [1]  # 2 items after: gone
    assert remember((), None, _unit(4), 0) == ()  # none kept
    assert afters([(), ()]) is None and afters([kept, ()]) == [[1, 0], []]


def test_a_redelivered_search_is_not_kept_twice() -> None:
    decay, config = DecayConfig(half_life_s=3600.0), InterestConfig(half_life_s=3600.0)
    state = UserState.empty(8)
    for event_id, item_id, vector in (("e1", "a", _unit(1)), ("q1", None, _unit(2)), ("q1", None, _unit(2)),
                                      ("e2", "b", _unit(3))):
        state = merge_event(state, vector, 1.0, 1_000, decay, config, event_id=event_id, item_id=item_id)
    assert [s.after for s in state.searches] == [1] and state.history == ("a", "b")
