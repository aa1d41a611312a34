"""A batch of interactions -> new user states: what the worker calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from cf.decay import DecayConfig
from cf.interests import InterestConfig, Interests, fold_users, merge_interest
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


REBASE_ITEMS = 20  # a re-based state is rebuilt from this many of the user's latest items

VectorOf = Callable[[str], "FloatVec | None"]  # item id -> (D,) unit vector in the current space


def rebase(state: UserState, space: str, vector_of: VectorOf = lambda item_id: None,
           config: InterestConfig | None = None) -> UserState:
    """A state built in another vector space (another encoder version) is rebuilt in `space`
    from its own history; vectors of two spaces are never added together. The history keeps
    item ids, not times or weights, so its latest R items count equally, as of `updated_ms`:

        v' = sum_{i in last R items with a vector in `space`} e'_i,   weight_sum' = their count

    and the interests are rebuilt from the same items, oldest first; its searches' vectors are
    of the other space and go."""
    if state.space == space:
        return state
    config = config or InterestConfig()
    found = [(i, v) for i in state.history[-REBASE_ITEMS:] if (v := vector_of(i)) is not None]
    vector = np.zeros_like(state.vector)  # (D,)
    interests = Interests()
    for item_id, v in found:
        vector += v
        interests = merge_interest(interests, v, 1.0, state.updated_ms, config, item_id, vector_of)
    return replace(state, vector=vector, weight_sum=float(len(found)),
                   events=len(found), space=space, interests=interests.interests, searches=())


def apply_interactions(
    states: Mapping[str, UserState | None],
    interactions: Sequence[Interaction],
    config: DecayConfig,
    dim: int,
    space: str,
    vector_of: VectorOf = lambda item_id: None,
    interests: InterestConfig | None = None,
    stored: bool = False,
) -> dict[str, UserState]:
    """Fold each user's interactions into their state, in the order given (per-user order is
    the partition's order). Users absent from `states` (or None) start empty; a state of another
    vector space is re-based with `vector_of` first; every user's events are folded together
    (`cf.interests.fold_users`). `interests`: K and the join threshold (its
    half-life is the decay's). stored: each new state as it will be stored and read back
    (`UserState.rounded`), what the worker ranks."""
    interest_config = replace(interests or InterestConfig(), half_life_s=config.half_life_s)
    by_user: dict[str, list[Interaction]] = {}
    for x in interactions:
        by_user.setdefault(x.user_id, []).append(x)
    before = [rebase(states.get(u) or UserState.empty(dim, space), space, vector_of, interest_config)
              for u in by_user]
    after = fold_users(before, list(by_user.values()), config, interest_config, vector_of, stored)
    return dict(zip(by_user, after, strict=True))
