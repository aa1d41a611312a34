"""The interest transition: exponential time decay, then add the event's weighted vector."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cf.searches import SEARCH_HORIZON, remember
from cf.state import FloatVec, UserState


@dataclass(frozen=True)
class DecayConfig:
    half_life_s: float  # seconds for an event's contribution to halve
    history_size: int = 500  # consumed items kept per user for filtering
    seen_size: int = 64  # event ids kept per user to skip redeliveries
    search_size: int = 4  # latest free-text searches kept per user, as positions of their sequence
    search_horizon: int = SEARCH_HORIZON  # ... each until this many items came after it

    def __post_init__(self) -> None:
        if self.half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        if not 0 <= self.search_size <= 255:
            raise ValueError("search_size must be within 0..255")


def decay_factor(dt_ms: int, half_life_s: float) -> float:
    """2^(-dt/h) for dt >= 0 (ms) and h in seconds (a Python float: the worker calls this per event)."""
    return 2.0 ** (-(dt_ms / 1000.0) / half_life_s)


def decay_merge(
    state: UserState,
    vector: FloatVec | None,  # (D,) float32 L2-normalised, or None when the item is unknown
    weight: float,
    event_ts_ms: int,
    config: DecayConfig,
    *,
    event_id: str | None = None,
    item_id: str | None = None,
) -> UserState:
    """Merge one event into a user's state; a pure function of its arguments.

    In order (t >= t_prev):   u_t = 2^(-(t - t_prev)/h) * u_prev + w * e,   t_prev <- t
    Late (t < t_prev):        u   = u_prev + 2^(-(t_prev - t)/h) * w * e,   t_prev unchanged
    Both equal sum_i w_i 2^(-(T - t_i)/h) e_i with T the newest event time, so the state
    does not depend on arrival order, and a late event is discounted, never amplified.
    The weight sum s = sum_i w_i 2^(-(T - t_i)/h) follows the same rule (events with a vector).
    An event id already in `seen` is a redelivery and leaves the state as it is.
    """
    if event_id is not None and event_id in state.seen:
        return state
    if state.events == 0:
        updated_ms = event_ts_ms
        u = np.zeros_like(state.vector)  # (D,) float32
        s = 0.0
        contribution = weight
    elif event_ts_ms >= state.updated_ms:
        updated_ms = event_ts_ms
        factor = decay_factor(event_ts_ms - state.updated_ms, config.half_life_s)
        u = state.vector * np.float32(factor)
        s = state.weight_sum * factor
        contribution = weight
    else:
        updated_ms = state.updated_ms
        u = state.vector.copy()
        s = state.weight_sum
        contribution = weight * decay_factor(state.updated_ms - event_ts_ms, config.half_life_s)
    if vector is not None:
        u = u + np.float32(contribution) * vector  # (D,) float32
        s += contribution
    history = state.history
    if item_id is not None:
        kept = tuple(h for h in history if h != item_id) if item_id in history else history
        history = (*kept, item_id)[-config.history_size :]
    seen = state.seen if event_id is None else (*state.seen, event_id)[-config.seen_size :]
    return replace(
        state,
        vector=u.astype(np.float32, copy=False),
        updated_ms=updated_ms,
        events=state.events + 1,
        weight_sum=s,
        history=history,
        seen=seen,
        searches=remember(state.searches, item_id, vector, config.search_size, config.search_horizon),
    )
