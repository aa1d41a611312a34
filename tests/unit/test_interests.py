"""Multi-interest state against a slow reference that keeps every event of every interest."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cf.batch import Interaction, apply_interactions
from cf.catalog import ItemCatalog
from cf.decay import DecayConfig, decay_merge
from cf.hybrid import BlendPolicy, BlendWeights, blend, blend_interests, stack, standardise
from cf.interests import (
    InterestConfig,
    Interests,
    activity_shares,
    fold_users,
    interest_rows,
    interest_text,
    interest_weights,
    merge_event,
    merge_events,
    merge_interest,
    text_rows,
)
from cf.scoring import cosine_scores
from cf.state import UserState

H = 3600.0


def topic_events(rng: np.random.Generator, n: int, d: int = 16) -> list[tuple[str, np.ndarray, float, int]]:
    """Events around three topics, times mostly increasing with some late ones."""
    topics = rng.normal(size=(3, d))
    out, t = [], 0
    for i in range(n):
        v = topics[rng.integers(3)] + 0.3 * rng.normal(size=d)
        t += int(rng.integers(0, 600_000))
        ts = t - int(rng.integers(0, 1_800_000)) if rng.random() < 0.1 else t  # late
        unit = (v / np.linalg.norm(v)).astype(np.float32)
        out.append((f"i{i}", unit, float(rng.choice([1.0, 2.0, -1.0])), ts))
    return out


def reference(events: list[tuple[str, np.ndarray, float, int]], config: InterestConfig) -> list[np.ndarray]:
    """Each interest as the list of its events; vectors recomputed from them at every step."""
    clusters: list[list[tuple[np.ndarray, float, int]]] = []
    newest = None

    def vec(c: list[tuple[np.ndarray, float, int]], at: int) -> np.ndarray:
        return sum(w * 2.0 ** (-(at - t) / 1000.0 / config.half_life_s) * e for e, w, t in c)

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        return float(a @ b / (na * nb)) if na > 0 and nb > 0 else -1.0

    for _, e, w, t in events:
        newest = t if newest is None else max(newest, t)
        sims = [cos(vec(c, newest), e) for c in clusters]
        if sims and max(sims) >= config.join_cosine:
            clusters[int(np.argmax(sims))].append((e, w, t))
        else:
            clusters.append([(e, w, t)])
            if len(clusters) > config.max_interests:
                pairs = [(a, b) for a in range(len(clusters)) for b in range(a + 1, len(clusters))]
                a, b = max(pairs, key=lambda p: cos(vec(clusters[p[0]], newest), vec(clusters[p[1]], newest)))
                merged = clusters[a] + clusters[b]
                clusters = [c for n, c in enumerate(clusters) if n not in (a, b)] + [merged]
    return [vec(c, newest) for c in clusters]


def test_interests_equal_the_slow_reference_and_partition_the_single_vector() -> None:
    rng = np.random.default_rng(3)
    config = InterestConfig(max_interests=3, join_cosine=0.6, half_life_s=H)
    events = topic_events(rng, 200)
    state, single = Interests(), UserState.empty(16)
    for item, e, w, t in events:
        state = merge_interest(state, e, w, t, config, item_id=item)
        single = decay_merge(single, e, w, t, DecayConfig(half_life_s=H))
    expected = reference(events, config)
    assert len(state.interests) == len(expected) <= 3
    for got, want in zip(state.interests, expected, strict=True):
        np.testing.assert_allclose(got.vector, want, rtol=1e-3, atol=1e-4)
    total = sum(k.vector for k in state.interests)
    np.testing.assert_allclose(total, single.vector, rtol=1e-4, atol=1e-4)  # u = sum_k u_k
    weights = sum(k.weight_sum for k in state.interests)
    assert abs(weights - single.weight_sum) < 1e-6 * max(1.0, abs(single.weight_sum))
    assert state.events == 200 and state.updated_ms == single.updated_ms


def test_two_tastes_make_two_interests_named_by_their_own_items() -> None:
    horror, cooking = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    vectors = {"alien": horror, "halloween": unit(horror + 0.1 * cooking),
               "chef": cooking, "julia": unit(cooking + 0.2 * horror)}
    state = Interests()
    for t, item in enumerate(["alien", "chef", "halloween", "julia", "alien"]):
        state = merge_interest(state, vectors[item].astype(np.float32), 1.0, t * 1000, InterestConfig(),
                               item_id=item, vector_of=vectors.get)
    named = sorted(sorted(k.items) for k in state.interests)
    assert named == [["alien", "halloween"], ["chef", "julia"]]
    pi = interest_weights(state)
    assert abs(pi.sum() - 1) < 1e-9 and pi.max() > 0.5  # horror got three of the five events


def _axes_catalog(dim: int) -> ItemCatalog:
    """Six directions (tastes) and one item near everyone's average, close to no one's taste."""
    catalog = ItemCatalog(dim)
    for n in range(dim):
        catalog.upsert(f"axis{n}", np.eye(dim, dtype=np.float32)[n])
    catalog.upsert("bland", np.ones(dim, np.float32) / np.sqrt(dim))
    return catalog


def _user(axes: list[int], dim: int) -> UserState:
    state, config = UserState.empty(dim), InterestConfig()
    for t, axis in enumerate(axes):
        state = merge_event(state, np.eye(dim, dtype=np.float32)[axis], 1.0, t, DecayConfig(half_life_s=H),
                            config, event_id=f"e{t}", item_id=f"axis{axis}")
    return state


def test_each_interest_finds_its_own_items_where_one_averaged_vector_finds_neither() -> None:
    # the user likes directions 0 and 1 (horror, cooking) equally, and went 0, 1, 0, 1
    dim = 6
    catalog = _axes_catalog(dim)
    state = _user([0, 1, 0, 1], dim)
    assert len(state.interests) == 2
    each = interest_text(catalog, [state], beta=0.3)
    multi = dict(zip(catalog.ids, (each.scores + each.log_share[:, :, None]).max(axis=0)[0], strict=True))
    single = dict(zip(catalog.ids, cosine_scores(catalog, state.vector[None, :],
                                                 np.array([state.weight_sum], np.float32))[0], strict=True))
    assert multi["axis0"] > multi["bland"] and multi["axis1"] > multi["bland"]
    # its own interest's centred cosine (1), discounted by its share of the activity
    # a_0 = 0.8^3 + 0.8 (events 1 and 3 of 4), a_1 = 0.8^2 + 1
    share_0 = (0.8**3 + 0.8) / (0.8**3 + 0.8 + 0.8**2 + 1)
    assert multi["axis0"] == pytest.approx(1.0 + 0.3 * np.log(share_0), abs=1e-5)
    assert multi["axis1"] > multi["axis0"]  # the current interest ranks first
    assert multi["axis0"] - multi["axis2"] > single["axis0"] - single["axis2"]  # sharper than the average


def test_the_interest_of_the_latest_events_holds_most_of_the_activity() -> None:
    state = _user([0, 0, 0, 1, 1], 6)
    shares = activity_shares(state.interests)
    assert [k.items for k in state.interests] == [("axis0",), ("axis1",)]
    # three horror events earlier against two cooking events just now
    assert shares[1] > shares[0] and interest_weights(Interests.of(state))[0] > 0.5
    assert shares.sum() == pytest.approx(1.0)


def test_merge_event_keeps_the_interests_a_partition_of_the_single_vector_and_skips_redeliveries() -> None:
    rng = np.random.default_rng(5)
    config = InterestConfig(max_interests=3, join_cosine=0.6, half_life_s=H)
    decay = DecayConfig(half_life_s=H)
    state = UserState.empty(16)
    for n, (item, e, w, t) in enumerate(topic_events(rng, 120)):
        state = merge_event(state, e, w, t, decay, config, event_id=f"e{n}", item_id=item)
    again = merge_event(state, np.ones(16, np.float32) / 4, 1.0, 10**9, decay, config, event_id="e119")
    assert again is state
    np.testing.assert_allclose(sum(k.vector for k in state.interests), state.vector, rtol=1e-4, atol=1e-4)
    assert sum(k.weight_sum for k in state.interests) == pytest.approx(state.weight_sum, rel=1e-6, abs=1e-6)
    back = UserState.from_bytes(state.to_bytes())
    rounded = state.rounded()  # what the worker ranks: the state as it is stored
    np.testing.assert_array_equal(back.vector, rounded.vector)
    assert back.weight_sum == rounded.weight_sum and len(back.interests) == len(state.interests) == 3
    for got, want in zip(back.interests, rounded.interests, strict=True):
        np.testing.assert_array_equal(got.vector, want.vector)
        assert got.items == want.items and got.weight_sum == want.weight_sum
        assert got.activity == pytest.approx(want.activity, rel=1e-6)  # stored as float32


def _mixed(rng: np.random.Generator, n: int) -> list[Interaction]:
    """Topic events with redeliveries, events of items with no vector, a repeated item and searches
    (a text's vector, no item)."""
    out = []
    for k, (item, e, w, t) in enumerate(topic_events(rng, n)):
        event_id = f"e{k - 3}" if k > 3 and rng.random() < 0.05 else f"e{k}"  # an earlier event again
        vector = None if rng.random() < 0.05 else e
        item_id = None if k % 9 == 5 and vector is not None else "i7" if k % 17 == 0 else item
        out.append(Interaction("u", event_id, t, w, vector, item_id))
    return out


def _same_searches(got: UserState, want: UserState) -> None:
    assert [s.after for s in got.searches] == [s.after for s in want.searches]
    for mine, theirs in zip(got.searches, want.searches, strict=True):
        np.testing.assert_array_equal(mine.vector, theirs.vector)


def test_a_batch_folds_to_the_same_state_bit_for_bit_as_its_events_one_by_one() -> None:
    """The worker folds each user's events of a batch at once, the evaluator one at a time: the
    states must be the same, or the numbers measured would not be the worker's."""
    rng = np.random.default_rng(11)
    config = InterestConfig(max_interests=3, join_cosine=0.6, half_life_s=H)
    decay = DecayConfig(half_life_s=H, history_size=40, seen_size=8)
    events = _mixed(rng, 300)
    vectors = {x.item_id: x.vector for x in events if x.vector is not None}
    one_by_one = UserState.empty(16)
    for x in events:
        one_by_one = merge_event(one_by_one, x.vector, x.weight, x.ts_ms, decay, config, event_id=x.event_id,
                                 item_id=x.item_id, vector_of=vectors.get)
    batched = UserState.empty(16)
    for start in range(0, len(events), 37):
        batched = merge_events(batched, events[start:start + 37], decay, config, vectors.get)
    np.testing.assert_array_equal(batched.vector, one_by_one.vector)
    assert (batched.weight_sum, batched.events, batched.updated_ms) == (
        one_by_one.weight_sum, one_by_one.events, one_by_one.updated_ms)
    assert batched.history == one_by_one.history and batched.seen == one_by_one.seen
    assert len(batched.history) == 40 and len(batched.seen) == 8
    _same_searches(batched, one_by_one)
    assert len(batched.searches) >= 2
    assert len(batched.interests) == len(one_by_one.interests) == 3
    for got, want in zip(batched.interests, one_by_one.interests, strict=True):
        np.testing.assert_array_equal(got.vector, want.vector)
        assert (got.weight_sum, got.items, got.activity) == (want.weight_sum, want.items, want.activity)


def test_users_folded_together_get_the_states_each_gets_folded_alone() -> None:
    """The worker folds a whole batch's users at once (`fold_users`): a user's state must not
    depend on who else is in the batch, or on how many events the others bring."""
    rng = np.random.default_rng(14)
    config = InterestConfig(max_interests=3, join_cosine=0.6, half_life_s=H)
    decay = DecayConfig(half_life_s=H, history_size=40, seen_size=8)
    per_user = {f"u{n}": [replace(x, user_id=f"u{n}") for x in _mixed(rng, size)]
                for n, size in enumerate((120, 7, 1, 60, 33))}
    per_user["u5"] = [replace(x, user_id="u5", vector=None) for x in _mixed(rng, 5)]  # no vectors at all
    vectors = {x.item_id: x.vector for xs in per_user.values() for x in xs if x.vector is not None}
    start = {u: merge_events(UserState.empty(16), xs[: len(xs) // 2], decay, config, vectors.get)
             for u, xs in per_user.items()}
    start["u2"] = UserState.empty(16)  # a new user
    mine = {u: xs[len(xs) // 2 :] for u, xs in per_user.items()}
    mine["u1"] = [*mine["u1"], mine["u1"][0]]  # the same event twice in the batch
    for stored in (False, True):
        together = fold_users([start[u] for u in per_user], [mine[u] for u in per_user], decay, config,
                              vectors.get, stored)
        for u, got in zip(per_user, together, strict=True):
            want = merge_events(start[u], mine[u], decay, config, vectors.get, stored)
            np.testing.assert_array_equal(got.vector, want.vector)
            assert (got.weight_sum, got.events, got.updated_ms, got.history, got.seen) == (
                want.weight_sum, want.events, want.updated_ms, want.history, want.seen)
            _same_searches(got, want)
            assert len(got.interests) == len(want.interests)
            for k, w in zip(got.interests, want.interests, strict=True):
                np.testing.assert_array_equal(k.vector, w.vector)
                assert (k.weight_sum, k.items, k.activity) == (w.weight_sum, w.items, w.activity)
    redelivered = fold_users([start["u1"]], [per_user["u1"][: len(per_user["u1"]) // 2][-2:]], decay, config,
                             vectors.get)[0]
    assert redelivered is start["u1"]  # only redeliveries: the very same state


def test_the_fold_matches_the_step_by_step_transitions() -> None:
    """`merge_events` against `decay_merge` and `merge_interest` applied per event."""
    rng = np.random.default_rng(12)
    config = InterestConfig(max_interests=3, join_cosine=0.6, half_life_s=H)
    decay = DecayConfig(half_life_s=H, history_size=40, seen_size=8)
    events = _mixed(rng, 300)
    vectors = {x.item_id: x.vector for x in events if x.vector is not None}
    single, interests = UserState.empty(16), Interests()
    for x in events:
        if x.event_id in single.seen:
            continue
        single = decay_merge(single, x.vector, x.weight, x.ts_ms, decay, event_id=x.event_id,
                             item_id=x.item_id)
        interests = merge_interest(interests, x.vector, x.weight, x.ts_ms, config, x.item_id, vectors.get)
    folded = merge_events(UserState.empty(16), events, decay, config, vectors.get)
    np.testing.assert_allclose(folded.vector, single.vector, rtol=1e-6, atol=1e-6)
    assert folded.weight_sum == pytest.approx(single.weight_sum, rel=1e-9, abs=1e-9)
    assert (folded.events, folded.updated_ms, folded.history, folded.seen) == (
        single.events, single.updated_ms, single.history, single.seen)
    _same_searches(folded, single)
    assert len(folded.searches) >= 2
    assert len(folded.interests) == len(interests.interests)
    for got, want in zip(folded.interests, interests.interests, strict=True):
        np.testing.assert_allclose(got.vector, want.vector, rtol=1e-5, atol=1e-5)
        assert got.items == want.items and got.activity == pytest.approx(want.activity)
        assert got.weight_sum == pytest.approx(want.weight_sum, rel=1e-9, abs=1e-9)


def test_one_interest_blends_as_the_single_vector_and_each_item_comes_from_its_best_interest() -> None:
    dim = 6
    catalog = _axes_catalog(dim)
    policy = BlendPolicy((1,), (BlendWeights(), BlendWeights(0.5, 0.0, 0.0, 0.5)))
    available = np.ones((1, len(catalog)), bool)
    popularity = np.linspace(0, 1, len(catalog), dtype=np.float32)[None, :]  # (1, N)
    one = _user([0, 0], dim)
    z = stack({"text": cosine_scores(catalog, one.vector[None, :], np.array([one.weight_sum], np.float32)),
               "popularity": popularity}, available)  # (C, 1, N)
    each = interest_text(catalog, [one], beta=0.3)
    served, chosen, _ = blend_interests(z, standardise(each.scores, available), each.log_share, policy, [2],
                                        available)
    np.testing.assert_allclose(served, blend(z, policy, [2], available), rtol=1e-6, atol=1e-6)
    two = _user([0, 1, 0, 1], dim)
    each = interest_text(catalog, [two], beta=0.3)
    _, chosen, _ = blend_interests(z, standardise(each.scores, available), each.log_share, policy, [4],
                                          available)
    from_interest = each.slot[chosen, 0][0]  # (N,)
    assert from_interest[catalog.row_of("axis0")] == 0 and from_interest[catalog.row_of("axis1")] == 1


def test_a_fold_rounded_as_stored_is_the_state_read_back_from_its_bytes() -> None:
    """The worker ranks `apply_interactions(..., stored=True)`: the same state, bit for bit, as
    rounding the fold afterwards and as decoding what it stores; redeliveries alone included."""
    rng = np.random.default_rng(13)
    config = InterestConfig(max_interests=3, join_cosine=0.6, half_life_s=H)
    decay = DecayConfig(half_life_s=H, history_size=40, seen_size=8)
    events = _mixed(rng, 120)
    vectors = {x.item_id: x.vector for x in events if x.vector is not None}
    start = apply_interactions({}, events[:60], decay, 16, "", vectors.get, config)
    for again, batch in ((False, events[60:]), (True, events[-4:])):  # new events, then only redeliveries
        folded = apply_interactions(start, batch, decay, 16, "", vectors.get, config)["u"]
        assert (folded is start["u"]) == again  # redeliveries alone: the state as it was
        plain = folded.rounded()
        stored = apply_interactions(start, batch, decay, 16, "", vectors.get, config, stored=True)["u"]
        back = UserState.from_bytes(stored.to_bytes())
        assert stored.to_bytes() == replace(stored, stored_rows=None).to_bytes()  # the fold's rows as stored
        for got in (stored, back):
            np.testing.assert_array_equal(got.vector, plain.vector)
            assert len(got.interests) == len(plain.interests)
            for k, want in zip(got.interests, plain.interests, strict=True):
                np.testing.assert_array_equal(k.vector, want.vector)
                assert (k.weight_sum, k.items) == (want.weight_sum, want.items)
        start = {"u": stored}


def test_a_fold_keeps_what_the_events_do_not_change() -> None:
    """The last list shown and the vector space go through a fold as they were (the fold makes
    each new state field by field)."""
    rng = np.random.default_rng(5)
    decay = DecayConfig(half_life_s=H)
    events = _mixed(rng, 6)
    vectors = {x.item_id: x.vector for x in events if x.vector is not None}
    start = replace(UserState.empty(16, "space-1"), shown=("a", "b"))
    for stored in (False, True):
        folded = apply_interactions({"u": start}, events, decay, 16, "space-1", vectors.get,
                                    stored=stored)["u"]
        assert (folded.shown, folded.space, folded.events) == (("a", "b"), "space-1", len(events))


def test_text_rows_give_each_live_interest_and_a_user_without_one_their_single_vector() -> None:
    dim, beta = 6, 0.3
    catalog = _axes_catalog(dim)
    two = _user([0, 1, 0, 1], dim)  # two live interests
    config = InterestConfig()
    disliked = merge_event(UserState.empty(dim), np.eye(dim, dtype=np.float32)[2], -1.0, 0,
                           DecayConfig(half_life_s=H), config, event_id="d0", item_id="axis2")
    assert activity_shares(disliked.as_interests()).sum() == 0  # only a dislike: no live interest
    rows = text_rows(catalog, [two, disliked, two], beta)
    np.testing.assert_array_equal(rows.user, [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(rows.slot, [0, 1, 0, 0, 1])
    shares = activity_shares(two.as_interests())  # (2,)
    np.testing.assert_allclose(rows.log_share, [*beta * np.log(shares), 0.0, *beta * np.log(shares)],
                               rtol=1e-6)
    alone = cosine_scores(catalog, disliked.vector[None, :], np.array([disliked.weight_sum], np.float32))
    np.testing.assert_allclose(rows.scores[2], alone[0], rtol=1e-5, atol=1e-6)
    listed = interest_rows([two, disliked], beta)  # the same rows as tuples
    assert [(r.user, r.slot) for r in listed] == [(0, 0), (0, 1), (1, 0)]
    assert listed[2].log_share == 0.0 and listed[2].vector is disliked.vector
