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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from cf.catalog import ItemCatalog
from cf.decay import DecayConfig, decay_factor
from cf.scoring import cosine_scores
from cf.searches import remember
from cf.state import FloatVec, Interest, Search, UserState, float16_of, widened

VectorOf = Callable[[str], "FloatVec | None"]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class InterestConfig:
    max_interests: int = 4  # K
    join_cosine: float = 0.5  # tau: an event joins its nearest interest at least this close
    representatives: int = 3  # R items kept per interest
    half_life_s: float = 7 * 24 * 3600.0
    activity_decay: float = 0.8  # r: an interest's activity, per event of the user
    share_beta: float = 0.3  # beta: a less current interest's discount, per unit of ln(share)


@dataclass(frozen=True)
class Interests:
    interests: tuple[Interest, ...] = ()
    updated_ms: int = 0  # the newest event time merged; every interest is decayed to it
    events: int = 0

    @classmethod
    def of(cls, state: UserState) -> Interests:
        return cls(state.as_interests(), state.updated_ms, state.events)


def _closest_items(vector: FloatVec, items: tuple[str, ...], vector_of: VectorOf,
                   keep: int) -> tuple[str, ...]:
    """The `keep` of `items` (those with a vector) closest to `vector`, closest first, ties in
    order. Item vectors are unit, so their order by cosine is their order by dot product."""
    known = [(i, v) for i in dict.fromkeys(items) if (v := vector_of(i)) is not None]
    if len(known) <= 1:
        return tuple(i for i, _ in known)
    dots = [float(v @ vector) for _, v in known]  # a handful: one product each beats a stack
    order = sorted(range(len(known)), key=lambda n: -dots[n])
    return tuple(known[n][0] for n in order[:keep])


def _cosines(rows: F32) -> list[list[float]]:
    """cos(rows[a], rows[b]) for (n, D) rows from one Gram matrix; -1 where either is zero."""
    gram = rows @ rows.T  # (n, n)
    norms = np.sqrt(np.maximum(np.diagonal(gram), 0.0))  # (n,)
    cos = (gram / np.maximum(np.outer(norms, norms), np.float32(1e-30))).tolist()
    zero = (norms == 0).tolist()
    return [[-1.0 if zero[a] or zero[b] else c for b, c in enumerate(row)] for a, row in enumerate(cos)]


def merge_interest(state: Interests, vector: FloatVec | None, weight: float, ts_ms: int,
                   config: InterestConfig, item_id: str | None = None,
                   vector_of: VectorOf = lambda item_id: None) -> Interests:
    """One event into a user's interests (see the module's docstring). vector: (D,) unit. Every
    cosine it needs comes from one Gram matrix of the interests and the event (a handful of
    numpy calls per event: the worker runs this once per event)."""
    if state.events == 0 or ts_ms >= state.updated_ms:
        factor = 1.0 if state.events == 0 else decay_factor(ts_ms - state.updated_ms, config.half_life_s)
        updated_ms, contribution = ts_ms, weight
    else:  # late: the interests stay at T, the event is discounted to it
        factor, updated_ms = 1.0, state.updated_ms
        contribution = weight * decay_factor(state.updated_ms - ts_ms, config.half_life_s)
    old = state.interests
    n = len(old)
    rows = np.array([k.vector for k in old], np.float32) * np.float32(factor) if n else None  # (K, D) at T
    interests = [Interest(rows[m], k.weight_sum * factor, k.items, k.activity * config.activity_decay)
                 for m, k in enumerate(old)] if rows is not None else []
    if vector is None:
        return Interests(tuple(interests), updated_ms, state.events + 1)
    add = (np.float32(contribution) * vector).astype(np.float32)  # (D,)

    def lookup(i: str) -> FloatVec | None:
        return vector if i == item_id else vector_of(i)

    named = (item_id,) if item_id else ()
    if rows is None:
        return Interests((Interest(add, contribution, named, 1.0),), updated_ms, state.events + 1)
    cos = _cosines(np.vstack([rows, vector[None, :]]))  # (K + 1, K + 1), the event's e last
    sims = cos[n][:n]  # (K,) cos(u_k, e)
    best = max(range(n), key=sims.__getitem__)
    if sims[best] >= config.join_cosine:
        k = interests[best]
        joined = (k.vector + add).astype(np.float32)
        interests[best] = Interest(joined, k.weight_sum + contribution,
                                   _closest_items(joined, k.items + named, lookup, config.representatives),
                                   k.activity + 1.0)
    else:
        interests.append(Interest(add, contribution, named, 1.0))
        if len(interests) > config.max_interests:
            # the new interest is w e: its cosines are those of e times the sign of w
            sign = float(np.sign(contribution))
            for row in cos:
                row[n] = row[n] * sign if sign else -1.0
            cos[n] = [row[n] for row in cos]
            interests = _merge_closest(interests, cos, lookup, config.representatives)
    return Interests(tuple(interests), updated_ms, state.events + 1)


def _merge_closest(interests: list[Interest], cos: list[list[float]], vector_of: VectorOf,
                   keep: int) -> list[Interest]:
    """The two interests with the largest cosine (`cos`, their pairwise cosines) merged, the
    first such pair in (a, b) order."""
    n = len(interests)
    a, b = max(((a, b) for a in range(n) for b in range(a + 1, n)), key=lambda p: cos[p[0]][p[1]])
    ka, kb = interests[a], interests[b]
    vector = (ka.vector + kb.vector).astype(np.float32)  # (D,)
    merged = Interest(vector, ka.weight_sum + kb.weight_sum,
                      _closest_items(vector, ka.items + kb.items, vector_of, keep), ka.activity + kb.activity)
    return [k for n_k, k in enumerate(interests) if n_k not in (a, b)] + [merged]


def interest_weights(state: Interests) -> np.ndarray:
    """(K,) each interest's share of the positive weight, pi_k = max(s_k, 0) / sum_j max(s_j, 0)."""
    s = np.array([max(k.weight_sum, 0.0) for k in state.interests], dtype=np.float64)
    total = s.sum()
    return s / total if total > 0 else s


class Merge(Protocol):
    """What folding one event needs (`cf.batch.Interaction` is one)."""

    @property
    def vector(self) -> FloatVec | None: ...  # (D,) float32 unit; None: the item has no vector
    @property
    def weight(self) -> float: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def item_id(self) -> str | None: ...


@dataclass(frozen=True)
class _Event:
    vector: FloatVec | None
    weight: float
    ts_ms: int
    event_id: str | None
    item_id: str | None


def merge_event(state: UserState, vector: FloatVec | None, weight: float, ts_ms: int, decay: DecayConfig,
                config: InterestConfig, *, event_id: str | None = None, item_id: str | None = None,
                vector_of: VectorOf = lambda item_id: None) -> UserState:
    """One event into a user's state: the single vector (`cf.decay.decay_merge`) and the interests
    that partition it (`merge_interest`), together; a redelivered event (id in `seen`) changes
    neither. The same as `merge_events` with one event."""
    return merge_events(state, (_Event(vector, weight, ts_ms, event_id, item_id),), decay, config, vector_of)


def merge_events(state: UserState, events: Sequence[Merge], decay: DecayConfig, config: InterestConfig,
                 vector_of: VectorOf = lambda item_id: None, stored: bool = False) -> UserState:
    """Fold a user's events, in order, into their state (`fold_users` for one user)."""
    return fold_users([state], [events], decay, config, vector_of, stored)[0]


STEP_USERS = 4  # fewer users with an event at a step: each folds their own (a step's arrays cost more)


@dataclass
class _Fold:
    """One user's scalars while their events are folded; their vectors are rows of the batch's arrays."""

    state: UserState
    events: Sequence[Merge]
    seen_ids: set[str]
    s: float
    updated_ms: int
    count: int
    k: int  # interests held: rows 0..k-1 of the user's (cap, D) block
    sums: list[float]
    items: list[tuple[str, ...]]
    activity: list[float]
    history: list[str]
    seen: list[str]
    searches: tuple[Search, ...]
    consumed: set[str] | None = None  # the history as a set, built when first needed


def fold_users(states: Sequence[UserState], events: Sequence[Sequence[Merge]], decay: DecayConfig,
               config: InterestConfig, vector_of: VectorOf = lambda item_id: None,
               stored: bool = False) -> list[UserState]:
    """Fold each user's events, in order, into their state: `cf.decay.decay_merge` and
    `merge_interest` per event, every user of a batch at once. The users' interests are one
    (B, cap, D) array and each step is one array operation for all users with an event at that
    step (their r-th), so a batch of many users costs a few dozen numpy calls per step, not per
    user. Folding [a, b] equals folding [a] then [b], bit for bit, and a user's state does not
    depend on who else is in the batch: every value is elementwise or a reduction over one
    user's own (D,) rows.

    Per event (factor f = 2^(-(t - T)/h) for t >= T, else 1 and the weight is discounted to T):
        u <- f u + w e,  s <- f s + w;   U (K, D) <- f U,  s_k <- f s_k,  a_k <- r a_k
        cos_k = (U e)_k / (|U_k| |e|),  k* = argmax_k cos_k
        cos_k* >= tau:  U_k* += w e, s_k* += w, a_k* += 1
        otherwise:      a new row w e (a = 1); past K rows, the two rows of largest cosine add up

    stored: each new state as it will be stored and read back (`UserState.rounded`, done here on
    the rows at hand): the interests at float16 precision, the vector their sum. A user whose
    events are all redeliveries (ids in `seen`) keeps the very same state."""
    out: list[UserState | None] = [None] * len(states)
    folds: list[_Fold] = []
    at: list[int] = []  # each fold's place in `out`
    for n, (state, xs) in enumerate(zip(states, events, strict=True)):
        seen_ids = set(state.seen)
        if all(x.event_id is not None and x.event_id in seen_ids for x in xs):
            out[n] = state.rounded() if stored else state  # only redeliveries: the very same state
            continue
        old = state.as_interests()
        folds.append(_Fold(state, xs, seen_ids, state.weight_sum, state.updated_ms, state.events, len(old),
                           [k.weight_sum for k in old], [k.items for k in old], [k.activity for k in old],
                           list(state.history), list(state.seen), state.searches))
        at.append(n)
    if folds:
        for n, state in zip(at, _fold(folds, decay, config, vector_of, stored), strict=True):
            out[n] = state
    return out  # type: ignore[return-value]


def _fold(folds: list[_Fold], decay: DecayConfig, config: InterestConfig, vector_of: VectorOf,
          stored: bool) -> list[UserState]:
    """The new states of users with at least one event that is not a redelivery."""
    dim = folds[0].state.vector.shape[0]
    cap = max(config.max_interests, max(f.k for f in folds)) + 1  # rows a user may hold mid-event
    u = np.array([f.state.vector for f in folds], np.float32).reshape(len(folds), dim)  # (B, D)
    rows = np.zeros((len(folds), cap, dim), np.float32)  # (B, cap, D) interest rows, zero past k
    held = [k.vector for f in folds for k in f.state.as_interests()]
    if held:
        users = np.repeat(np.arange(len(folds)), [f.k for f in folds])  # (sum K,)
        slots = np.concatenate([np.arange(f.k) for f in folds])  # (sum K,)
        rows[users, slots] = np.array(held, np.float32)
    # steps while enough users have an event at them; the rest of each user's events one by one
    lengths = sorted((len(f.events) for f in folds), reverse=True)
    steps = lengths[STEP_USERS - 1] if len(lengths) >= STEP_USERS else 0
    for step in range(steps):
        having = [b for b, f in enumerate(folds) if len(f.events) > step]
        _step(folds, having, step, u, rows, decay, config, vector_of)
    for b, f in enumerate(folds):
        for x in f.events[steps:]:
            _event(f, b, x, u, rows, decay, config, vector_of)
    ks = np.array([f.k for f in folds], np.intp)  # (B,)
    live = np.arange(cap)[None, :] < ks[:, None]  # (B, cap)
    halves = None
    if stored:
        halves = float16_of(rows[live])  # (sum K, D) as stored
        rows = np.zeros_like(rows)
        rows[live] = widened(halves)  # (B, cap, D) read back; zero past k
        u = rows.sum(axis=1, dtype=np.float32)  # (B, D) each user's rows added one after another (`sum_rows`)
    kept = rows[live]  # (sum K, D) a fresh array: states never share rows with the fold
    first = np.r_[0, np.cumsum(ks)[:-1]].tolist()  # (B,)
    out = []
    for b, f in enumerate(folds):
        interests = tuple(map(Interest, kept[first[b] : first[b] + f.k], f.sums, f.items, f.activity))
        # made whole, in half the time of `replace`: a field added to UserState is added here too
        out.append(UserState(vector=u[b].copy(), updated_ms=f.updated_ms, events=f.count, weight_sum=f.s,
                             history=tuple(f.history), seen=tuple(f.seen), space=f.state.space,
                             shown=f.state.shown, interests=interests, searches=f.searches,
                             stored_rows=None if halves is None else
                             (interests, halves[first[b] : first[b] + f.k].tobytes())))
    return out


def _advance(f: _Fold, x: Merge, decay: DecayConfig,
             config: InterestConfig) -> tuple[bool, float, float] | None:
    """An event's scalars folded into the user's (time, weights, activity, history, seen): whether
    it is the user's first (their vectors start from zero), the factor their vectors decay by and
    the event's weight w at the user's time. None for a redelivery or the same event twice."""
    if x.event_id is not None and x.event_id in f.seen_ids:
        return None
    first = f.count == 0
    if first:
        factor, contribution, f.updated_ms, f.s = 1.0, x.weight, x.ts_ms, 0.0
    elif x.ts_ms >= f.updated_ms:
        factor, contribution = decay_factor(x.ts_ms - f.updated_ms, config.half_life_s), x.weight
        f.updated_ms = x.ts_ms
    else:  # late: everything stays at T, the event is discounted to it
        factor, contribution = 1.0, x.weight * decay_factor(f.updated_ms - x.ts_ms, config.half_life_s)
    if factor != 1.0:
        f.s *= factor
        f.sums = [w * factor for w in f.sums]
    f.activity = [a * config.activity_decay for a in f.activity]
    f.count += 1
    _remember(f, x, decay)
    return first, factor, contribution


def _step(folds: list[_Fold], users: Sequence[int], step: int, u: F32, rows: F32, decay: DecayConfig,
          config: InterestConfig, vector_of: VectorOf) -> None:
    """The `step`-th event of each of `users` (each has one), in place on u (B, D) and rows
    (B, cap, D): each vector operation once for them all."""
    zeroed: list[int] = []  # users folding their first event: u starts from zero
    scaled: list[int] = []  # users whose vectors decay, by `factors`
    factors: list[float] = []
    adding: list[int] = []  # users whose event has a vector, `contributions` times `vectors`
    contributions: list[float] = []
    vectors: list[FloatVec] = []
    added: list[Merge] = []
    for b in users:
        x = folds[b].events[step]
        advanced = _advance(folds[b], x, decay, config)
        if advanced is None:
            continue
        first, factor, contribution = advanced
        if first:
            zeroed.append(b)
        elif factor != 1.0:
            scaled.append(b)
            factors.append(factor)
        if x.vector is not None:
            adding.append(b)
            contributions.append(contribution)
            vectors.append(x.vector)
            added.append(x)
    if zeroed:
        u[zeroed] = 0.0
    if scaled:
        at = np.array(scaled, np.intp)  # (S,)
        f32 = np.array(factors, np.float32)  # (S,)
        u[at] *= f32[:, None]
        rows[at] *= f32[:, None, None]
    if not adding:
        return
    at = np.array(adding, np.intp)  # (A,)
    e = np.array(vectors, np.float32)  # (A, D) unit
    add = np.array(contributions, np.float32)[:, None] * e  # (A, D) w e
    u[at] += add
    block = rows[at]  # (A, cap, D)
    dots = (block * e[:, None, :]).sum(axis=2).tolist()  # (A, cap) U_k . e
    squares = (block * block).sum(axis=2).tolist()  # (A, cap) |U_k|^2
    norms = (e * e).sum(axis=1).tolist()  # (A,) |e|^2
    for a, (b, x, contribution) in enumerate(zip(adding, added, contributions, strict=True)):
        _place(folds[b], x, contribution, add[a], dots[a], squares[a], norms[a], rows[b], config, vector_of)


def _event(f: _Fold, b: int, x: Merge, u: F32, rows: F32, decay: DecayConfig, config: InterestConfig,
           vector_of: VectorOf) -> None:
    """`_step` for one user: the same arithmetic, bit for bit (elementwise, or the same reduction
    over each (D,) row), on views of the user's rows instead of gathered copies."""
    advanced = _advance(f, x, decay, config)
    if advanced is None:
        return
    first, factor, contribution = advanced
    vector, held = u[b], rows[b, : f.k]  # (D,), (K, D) views; the rows past K are zero
    if first:
        vector[:] = 0.0
    elif factor != 1.0:
        f32 = np.float32(factor)
        vector *= f32
        held *= f32
    if x.vector is None:
        return
    e = np.asarray(x.vector, np.float32)  # (D,) unit
    add = np.float32(contribution) * e  # (D,) w e
    vector += add
    dots = (held * e).sum(axis=1).tolist()  # (K,) U_k . e
    squares = (held * held).sum(axis=1).tolist()  # (K,) |U_k|^2
    _place(f, x, contribution, add, dots, squares, float((e * e).sum(axis=-1)), rows[b], config, vector_of)


def _place(f: _Fold, x: Merge, contribution: float, add: F32, dots: list[float], squares: list[float],
           norm2: float, rows: F32, config: InterestConfig, vector_of: VectorOf) -> None:
    """The event's vector w e (add, (D,)) into the user's rows ((cap, D), in place): the nearest
    interest joined, or a new one, past K the closest pair merged. dots, squares: (cap,) its dot
    with each row and their squared norms; norm2: |e|^2."""
    f.s += contribution
    named = (x.item_id,) if x.item_id else ()
    if f.k == 0:
        rows[0] = add
        f.k, f.sums, f.items, f.activity = 1, [contribution], [named], [1.0]
        return
    best, cos_best = _nearest(dots[: f.k], squares[: f.k], math.sqrt(norm2))
    if cos_best >= config.join_cosine:
        rows[best] += add
        f.sums[best] += contribution
        f.items[best] = _closest_items(rows[best], f.items[best] + named, _with(x, vector_of),
                                       config.representatives)
        f.activity[best] += 1.0
        return
    rows[f.k] = add
    f.k += 1
    f.sums, f.items, f.activity = [*f.sums, contribution], [*f.items, named], [*f.activity, 1.0]
    if f.k > config.max_interests:
        _merge_pair(f, rows, _with(x, vector_of), config.representatives)


def _remember(f: _Fold, x: Merge, decay: DecayConfig) -> None:
    """The event's item at the end of the user's history, its id in `seen` and, a search, its text
    among the user's searches (`cf.searches`), all bounded."""
    f.searches = remember(f.searches, x.item_id, x.vector, decay.search_size, decay.search_horizon)
    if x.item_id is not None:
        if f.consumed is None:
            f.consumed = set(f.history)
        if x.item_id in f.consumed:
            f.history.remove(x.item_id)  # ids in the history are distinct
        f.history.append(x.item_id)
        f.consumed.add(x.item_id)
        if len(f.history) > decay.history_size:
            f.consumed.difference_update(f.history[: len(f.history) - decay.history_size])
            del f.history[: len(f.history) - decay.history_size]
    if x.event_id is not None:
        f.seen.append(x.event_id)
        f.seen_ids.add(x.event_id)
        if len(f.seen) > decay.seen_size:
            for gone in f.seen[: len(f.seen) - decay.seen_size]:
                f.seen_ids.discard(gone)
            del f.seen[: len(f.seen) - decay.seen_size]


def _merge_pair(f: _Fold, rows: F32, vector_of: VectorOf, keep: int) -> None:
    """The two of the user's k rows (rows: (cap, D), in place) of largest cosine added up, the
    merged row last."""
    a, b = _closest_pair(rows[: f.k])
    merged = rows[a] + rows[b]  # (D,)
    others = [n for n in range(f.k) if n not in (a, b)]
    merged_items = _closest_items(merged, f.items[a] + f.items[b], vector_of, keep)
    rows[: f.k - 1] = np.vstack([rows[others], merged[None, :]])
    rows[f.k - 1] = 0.0
    f.sums = [*(f.sums[n] for n in others), f.sums[a] + f.sums[b]]
    f.items = [*(f.items[n] for n in others), merged_items]
    f.activity = [*(f.activity[n] for n in others), f.activity[a] + f.activity[b]]
    f.k -= 1


def _with(x: Merge, vector_of: VectorOf) -> VectorOf:
    """`vector_of`, knowing the event's own item's vector (it may not be in the catalog yet)."""
    return lambda i: x.vector if i == x.item_id else vector_of(i)


def _nearest(dots: list[float], squares: list[float], e: float) -> tuple[int, float]:
    """(k, cos(U_k, e)) of the row closest to the event, from its (K,) dots U_k . e, squared
    norms |U_k|^2 and |e|; the first on ties; -1 for a zero row."""
    best, cos_best = 0, -2.0
    for k, (dot, square) in enumerate(zip(dots, squares, strict=True)):
        norm = math.sqrt(square) * e
        cos = dot / norm if norm > 0 else -1.0
        if cos > cos_best:
            best, cos_best = k, cos
    return best, cos_best


def _closest_pair(rows: F32) -> tuple[int, int]:
    """(a, b), a < b: the two rows of largest cosine, the first such pair in (a, b) order."""
    cos = _cosines(rows)
    n = len(cos)
    return max(((a, b) for a in range(n) for b in range(a + 1, n)), key=lambda p: cos[p[0]][p[1]])


def _shares(interests: tuple[Interest, ...]) -> list[float]:
    """`activity_shares` in Python floats: K is a handful, and the worker asks for every user of
    every batch."""
    activity = [k.activity if k.weight_sum > 0 else 0.0 for k in interests]  # (K,)
    total = sum(activity)
    return [a / total for a in activity] if total > 0 else activity


def activity_shares(interests: tuple[Interest, ...]) -> np.ndarray:
    """(K,) each live interest's (s_k > 0) share of the live interests' activity; 0 elsewhere."""
    return np.array(_shares(interests), dtype=np.float64)


@dataclass(frozen=True)
class InterestText:
    """B users' text signal, one row per live interest, padded to K rows per user."""

    scores: F32  # (K, B, N) centred cosine of each interest (`cf.scoring.cosine_scores`); 0 padding
    log_share: F32  # (K, B) beta ln(share of activity); -inf padding
    slot: npt.NDArray[np.intp]  # (K, B) the row's index in the user's interests; -1 padding


class InterestRow(NamedTuple):  # a tuple: a batch makes one per live interest of every user
    user: int  # position of the user in the batch
    slot: int  # index of the interest in the user's state
    vector: FloatVec  # (D,)
    weight_sum: float
    log_share: float  # beta ln(share of activity)


def interest_rows(states: list[UserState], beta: float) -> list[InterestRow]:
    """Each user's live interests (see `activity_shares`), users in order; a user with none (no
    events, or only dislikes) is one row of their single vector, share 1, slot 0."""
    vectors, sums, users, log_shares, slots = _live_rows(states, beta)
    return list(map(InterestRow, users, slots, vectors, sums, log_shares))


def _live_rows(states: list[UserState], beta: float) -> tuple[list[FloatVec], list[float], list[int],
                                                                list[float], list[int]]:
    """`interest_rows` as five flat lists, (R,) each: vectors, weight sums, users, log shares, slots
    (no tuple per row: the worker asks for every user of every batch)."""
    vectors: list[FloatVec] = []
    sums: list[float] = []
    users: list[int] = []
    log_shares: list[float] = []
    slots: list[int] = []
    for b, state in enumerate(states):
        interests = state.as_interests()
        shares = _shares(interests)  # (K,)
        live = [n for n, a in enumerate(shares) if a > 0]
        if live:
            vectors += [interests[n].vector for n in live]
            sums += [interests[n].weight_sum for n in live]
            log_shares += [beta * math.log(shares[n]) for n in live]
        else:  # the single vector, share 1, slot 0
            vectors.append(state.vector)
            sums.append(state.weight_sum)
            log_shares.append(0.0)
            live = [0]
        users += [b] * len(live)
        slots += live
    return vectors, sums, users, log_shares, slots


@dataclass(frozen=True)
class TextRows:
    """B users' text signal, one row per live interest (`interest_rows`), unpadded: rows grouped
    by user in batch order, every user at least one row."""

    scores: F32  # (R, N) centred cosine of each interest (`cf.scoring.cosine_scores`)
    user: npt.NDArray[np.intp]  # (R,) the row's user, non-decreasing
    log_share: F32  # (R,) beta ln(share of activity)
    slot: npt.NDArray[np.intp]  # (R,) the row's index in its user's interests


def text_rows(catalog: ItemCatalog, states: list[UserState], beta: float,
              cols: npt.NDArray[np.intp] | None = None) -> TextRows:
    """`interest_rows` scored in one (R, D) x (D, N) product; over the catalog rows `cols` when given."""
    vectors, sums, users, log_shares, slots = _live_rows(states, beta)
    return TextRows(cosine_scores(catalog, np.array(vectors, np.float32),  # (R, D)
                                  np.array(sums, np.float32), cols),  # (R, N)
                    np.array(users, np.intp), np.array(log_shares, np.float32), np.array(slots, np.intp))


def interest_text(catalog: ItemCatalog, states: list[UserState], beta: float,
                  cols: npt.NDArray[np.intp] | None = None, pad_to: int = 1) -> InterestText:
    """`text_rows` laid out per user; over the catalog rows `cols` when given; at least `pad_to`
    rows per user."""
    n_cols = len(catalog) if cols is None else cols.size
    if not states:
        k = max(pad_to, 1)
        return InterestText(np.zeros((k, 0, n_cols), np.float32), np.full((k, 0), -np.inf, np.float32),
                            np.full((k, 0), -1, np.intp))
    each = text_rows(catalog, states, beta, cols)
    starts = np.searchsorted(each.user, np.arange(len(states)))  # (B,) each user's first row
    at = np.arange(each.user.size) - starts[each.user]  # (R,) the row's place among its user's
    k = max(pad_to, int(at.max()) + 1)
    scores = np.zeros((k, len(states), n_cols), np.float32)  # (K, B, N)
    log_share = np.full((k, len(states)), -np.inf, np.float32)  # (K, B)
    slot = np.full((k, len(states)), -1, np.intp)  # (K, B)
    scores[at, each.user] = each.scores
    log_share[at, each.user], slot[at, each.user] = each.log_share, each.slot
    return InterestText(scores, log_share, slot)
