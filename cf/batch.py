"""A batch of interactions -> new user states: what the worker calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from cf.decay import DecayConfig, decay_merge
from cf.state import FloatVec, UserState


@dataclass(frozen=True)
class Interaction:
    """One validated event, reduced to what the math needs."""

    user_id: str
    event_id: str
    ts_ms: int  # event time, epoch ms
    weight: float  # signed: a dislike pushes away
    vector: FloatVec | None  # (D,) float32 unit; None when the item is not (yet) in the catalog
    item_id: str | None  # consumed item, excluded from this user's recommendations


def rebase(state: UserState, space: str) -> UserState:
    """A state built in another vector space (another encoder version) keeps its history and
    loses its vector: vectors of two spaces are never added together."""
    if state.space == space:
        return state
    return replace(state, vector=np.zeros_like(state.vector), weight_sum=0.0, events=0, space=space)


def apply_interactions(
    states: Mapping[str, UserState | None],
    interactions: Sequence[Interaction],
    config: DecayConfig,
    dim: int,
    space: str,
) -> dict[str, UserState]:
    """Fold each user's interactions into their state, in the order given (per-user order is
    the partition's order). Users absent from `states` (or None) start empty."""
    out: dict[str, UserState] = {}
    for x in interactions:
        state = out.get(x.user_id) or states.get(x.user_id) or UserState.empty(dim, space)
        out[x.user_id] = decay_merge(
            rebase(state, space), x.vector, x.weight, x.ts_ms, config,
            event_id=x.event_id, item_id=x.item_id,
        )
    return out
