"""A batch of interactions -> new user states -> top-k lists: what the worker and the evaluator call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from cf.catalog import ItemCatalog
from cf.decay import DecayConfig, decay_merge
from cf.scoring import Scored, top_k
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


def recommend(
    catalog: ItemCatalog, states: Mapping[str, UserState], k: int
) -> dict[str, list[Scored]]:
    """Top-k for many users with one (B, D) x (D, N) product."""
    users = list(states)
    if not users:
        return {}
    matrix = np.stack([states[u].vector for u in users]).astype(np.float32)  # (B, D)
    sums = np.array([states[u].weight_sum for u in users], dtype=np.float32)  # (B,)
    ranked = top_k(catalog, matrix, sums, [states[u].history for u in users], k)
    return dict(zip(users, ranked, strict=True))
