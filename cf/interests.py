"""Several interests per user, built online (after PinnerSage: a user's actions fall into a few
clusters, each standing for one interest, each with its most representative items).

A user holds up to K interests, each a decayed sum of the events assigned to it. With the same
decay as the single vector (`cf.decay`), the interests partition it exactly:

    u = sum_k u_k,   u_k = sum_{i in k} w_i 2^(-(T - t_i)/h) e_i,   s_k likewise without e_i

An event (vector e, weight w, time t) first decays every interest to max(T, t), then joins its
nearest interest k* = argmax_k cos(u_k, e) when that cosine is at least tau; otherwise it starts
an interest of its own, and if that makes K + 1, the two interests closest to each other
(largest cos(u_a, u_b)) merge: u = u_a + u_b, s = s_a + s_b. A late event (t < T) is discounted
to T as in `cf.decay`. Each interest keeps its R items closest to its vector (medoid-like), to
name it. The transition is a pure function of (state, event, time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from cf.catalog import ItemCatalog
from cf.decay import decay_factor
from cf.scoring import cosine_scores
from cf.state import FloatVec

VectorOf = Callable[[str], "FloatVec | None"]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class InterestConfig:
    max_interests: int = 4  # K
    join_cosine: float = 0.5  # tau: an event joins its nearest interest at least this close
    representatives: int = 3  # R items kept per interest
    half_life_s: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Interest:
    vector: FloatVec  # (D,) float32, the decayed sum of its events
    weight_sum: float  # the decayed sum of their weights
    items: tuple[str, ...] = ()  # its most representative items, closest first


@dataclass(frozen=True)
class Interests:
    interests: tuple[Interest, ...] = ()
    updated_ms: int = 0  # the newest event time merged; every interest is decayed to it
    events: int = 0


def _cos(a: FloatVec, b: FloatVec) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else -1.0


def _closest_items(vector: FloatVec, items: tuple[str, ...], vector_of: VectorOf,
                   keep: int) -> tuple[str, ...]:
    known = [(i, v) for i in dict.fromkeys(items) if (v := vector_of(i)) is not None]
    known.sort(key=lambda iv: -_cos(vector, iv[1]))
    return tuple(i for i, _ in known[:keep])


def merge_interest(state: Interests, vector: FloatVec | None, weight: float, ts_ms: int,
                   config: InterestConfig, item_id: str | None = None,
                   vector_of: VectorOf = lambda item_id: None) -> Interests:
    """One event into a user's interests (see the module's docstring). vector: (D,) unit."""
    if state.events == 0 or ts_ms >= state.updated_ms:
        factor = 1.0 if state.events == 0 else decay_factor(ts_ms - state.updated_ms, config.half_life_s)
        interests = [replace(k, vector=k.vector * np.float32(factor), weight_sum=k.weight_sum * factor)
                     for k in state.interests]
        updated_ms, contribution = ts_ms, weight
    else:  # late: the interests stay at T, the event is discounted to it
        interests = list(state.interests)
        updated_ms = state.updated_ms
        contribution = weight * decay_factor(state.updated_ms - ts_ms, config.half_life_s)
    if vector is not None:
        add = np.float32(contribution) * vector  # (D,)

        def lookup(i: str) -> FloatVec | None:
            return vector if i == item_id else vector_of(i)

        sims = [_cos(k.vector, vector) for k in interests]
        best = int(np.argmax(sims)) if sims else -1
        if best >= 0 and sims[best] >= config.join_cosine:
            k = interests[best]
            joined = (k.vector + add).astype(np.float32)
            items = k.items + ((item_id,) if item_id else ())
            interests[best] = Interest(joined, k.weight_sum + contribution,
                                       _closest_items(joined, items, lookup, config.representatives))
        else:
            interests.append(Interest(add.astype(np.float32), contribution, (item_id,) if item_id else ()))
            if len(interests) > config.max_interests:
                interests = _merge_closest(interests, lookup, config.representatives)
    return Interests(tuple(interests), updated_ms, state.events + 1)


def _merge_closest(interests: list[Interest], vector_of: VectorOf, keep: int) -> list[Interest]:
    n = len(interests)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    a, b = max(pairs, key=lambda p: _cos(interests[p[0]].vector, interests[p[1]].vector))
    ka, kb = interests[a], interests[b]
    vector = (ka.vector + kb.vector).astype(np.float32)  # (D,)
    merged = Interest(vector, ka.weight_sum + kb.weight_sum,
                      _closest_items(vector, ka.items + kb.items, vector_of, keep))
    return [k for n_k, k in enumerate(interests) if n_k not in (a, b)] + [merged]


def interest_weights(state: Interests) -> np.ndarray:
    """(K,) each interest's share of the positive weight, pi_k = max(s_k, 0) / sum_j max(s_j, 0)."""
    s = np.array([max(k.weight_sum, 0.0) for k in state.interests], dtype=np.float64)
    total = s.sum()
    return s / total if total > 0 else s


MINOR_INTEREST_PENALTY = 0.1  # beta


def multi_text_scores(catalog: ItemCatalog, state: Interests) -> F32:
    """(N,) text interest over several interests: an item scores by the interest it is closest to,
    a minor interest discounted by its share of the weight,

        text[n] = max_k ( c_k[n] + beta * ln pi_k )      over interests with pi_k > 0

    with c_k the centred cosine of interest k (`cf.scoring.cosine_scores`); all zeros without one."""
    pi = interest_weights(state)  # (K,)
    live = [n for n, p in enumerate(pi) if p > 0]
    if not live:
        return np.zeros(len(catalog), np.float32)
    vectors = np.stack([state.interests[n].vector for n in live]).astype(np.float32)  # (K', D)
    sums = np.array([state.interests[n].weight_sum for n in live], np.float32)  # (K',)
    c = cosine_scores(catalog, vectors, sums)  # (K', N)
    offset = MINOR_INTEREST_PENALTY * np.log(pi[live]).astype(np.float32)  # (K',)
    return (c + offset[:, None]).max(axis=0).astype(np.float32)  # (N,)
