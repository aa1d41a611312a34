"""The worker's scorer against the evaluator's: the same signals give the same hybrid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cf.batch import Interaction, apply_interactions
from cf.catalog import ItemCatalog
from cf.cooccurrence import SequentialCooccurrence
from cf.decay import DecayConfig, decay_merge
from cf.explain import EXPLAIN_WINDOW
from cf.factors import ALSParams, train_model
from cf.hybrid import BlendPolicy, BlendWeights
from cf.interests import InterestConfig
from cf.neighbours import CoocConfig, HeldRow, ItemRow, NeighbourIndex, RowDelta, batch_deltas, merge_row
from cf.popularity import DecayedPopularity
from cf.sequence_train import SeqParams, train_sequence
from cf.serving import HybridScorer
from cf.signals import Signals
from cf.state import UserState
from cf.weights import EventWeights
from streams.offline.evaluation import METHODS, Case, score_cases

N, D = 30, 8
DAY_MS = 86_400_000


def _world(seed: int = 0) -> tuple[list[str], np.ndarray, list[tuple[str, int, int]]]:
    rng = np.random.default_rng(seed)
    ids = [f"i{n}" for n in range(N)]
    vectors = rng.normal(size=(N, D)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    events = []
    for u in range(12):
        for t, item in enumerate(rng.choice(N, size=8, replace=False)):
            events.append((f"u{u}", int(item), (u * 3 + t) * DAY_MS // 4))
    events.sort(key=lambda e: e[2])
    return ids, vectors, events


def _rows(ids: list[str], events: list[tuple[str, int, int]], config: CoocConfig,
          batch: int) -> NeighbourIndex:
    """Deltas in batches, merged per row: what the interest and co-occurrence stages do."""
    index = NeighbourIndex(config)
    histories: dict[str, list[str]] = {}
    rows: dict[str, ItemRow] = {}
    for start in range(0, len(events), batch):
        chunk = [(u, ids[i], ts) for u, i, ts in events[start : start + batch]]
        for row, delta in batch_deltas(histories, chunk, config).items():
            rows[row] = merge_row(rows.get(row), delta, config)
        for u, item, _ in chunk:
            histories.setdefault(u, []).append(item)
    for item, row in rows.items():
        index.apply(item, row)
    return index


@pytest.mark.parametrize(("batch", "window"), [(1, 50), (7, 50), (7, 3)])
def test_sparse_rows_score_like_the_dense_matrix(batch: int, window: int) -> None:
    # window 3 < the 8 events per user: the pairs and the scores both see the last 3 items only
    ids, vectors, events = _world()
    config = CoocConfig(row_size=N * 2, window=window)  # nothing pruned
    dense = SequentialCooccurrence(N, config.window, config.pair_decay, config.recency_decay)
    pop = DecayedPopularity(N, half_life_s=config.half_life_s)
    for u, i, ts in events:
        dense.update(u, i, ts, None)
        pop.update(u, i, ts, None)
    index = _rows(ids, events, config, batch)
    catalog = ItemCatalog(D)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    users = sorted({u for u, _, _ in events})
    recents = [[ids[i] for i in dense.recent[u]] for u in users]
    sparse = index.cooc_scores(catalog, recents)  # (B, N)
    for b, u in enumerate(users):
        np.testing.assert_allclose(sparse[b], dense.scores(u, 0), rtol=1e-5, atol=1e-6)
    now = events[-1][2]
    np.testing.assert_allclose(index.popularity(catalog, [now])[0], pop.scores("u", now), rtol=1e-5)
    # users at other times, one before every item's last interaction (no decay: the value itself)
    _, value, at = index.arrays(catalog)
    times = [now + 3 * DAY_MS, now - DAY_MS, 0]
    expected = value[None, :] * np.exp2(-np.maximum(np.array(times)[:, None] - at[None, :], 0)
                                        / 1000 / config.half_life_s)
    np.testing.assert_allclose(index.popularity(catalog, times), expected, rtol=1e-5)
    np.testing.assert_allclose(index.popularity(catalog, [0])[0], value, rtol=1e-6)


def test_recent_items_whose_rows_pair_nothing_scored_score_zero() -> None:
    # a seen item with no pairs yet (its first event), or pairs only outside the scored columns:
    # nothing to sum, and the scores are float zeros, not an error
    ids, vectors, _ = _world(3)
    catalog = ItemCatalog(D)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    config = CoocConfig()
    index = NeighbourIndex(config)
    index.apply(ids[0], merge_row(None, RowDelta(1.0, 1000, {}, 1.0), config))
    index.apply(ids[1], merge_row(None, RowDelta(1.0, 1000, {ids[2]: 1.0}, 1.0), config))
    index.apply(ids[2], merge_row(None, RowDelta(1.0, 1000, {ids[1]: 1.0}, 1.0), config))
    alone = index.cooc_scores(catalog, [[ids[0]]])  # (1, N)
    assert alone.dtype == np.float32 and not alone.any()
    elsewhere = index.cooc_scores(catalog, [[ids[1]]], cols=np.array([0, 3, 4], np.intp))  # (1, 3)
    assert elsewhere.shape == (1, 3) and elsewhere.dtype == np.float32 and not elsewhere.any()
    scored = index.cooc_scores(catalog, [[ids[1]]], cols=np.array([2], np.intp))  # (1, 1)
    assert scored[0, 0] > 0


def test_a_row_keeps_its_heaviest_pairs_and_a_late_delta_is_discounted() -> None:
    config = CoocConfig(row_size=2, half_life_s=1.0)
    row = merge_row(None, RowDelta(1.0, 2000, {"a": 3.0, "b": 1.0, "c": 2.0}, 1.0), config)
    assert row.pairs == {"a": 3.0, "c": 2.0}
    late = merge_row(row, RowDelta(1.0, 1000, {}, popularity=1.0), config)
    assert late.at_ms == 2000 and late.popularity == pytest.approx(1.5)
    assert late.count == 2.0
    assert ItemRow.from_json(late.to_json()) == late


def test_a_held_row_shares_its_item_ids_and_scores_only_catalog_items() -> None:
    # two rows name the same item with two string objects (as a JSON parser without a key cache,
    # or one whose cache is full, gives them): held as one
    x1, again = "".join(["x", "1"]), "".join(["x", "1"])
    assert x1 is not again
    a = ItemRow(2.0, 1.5, 7, {x1: 0.5, "gone": 2.0})
    held_a, held_b = HeldRow.of(a), HeldRow.of(ItemRow(1.0, 1.0, 9, {again: 1.0}))
    assert held_a.ids == ("x1", "gone") and held_a.ids[0] is held_b.ids[0]
    np.testing.assert_allclose(held_a.weights, [0.5, 2.0])
    assert (held_a.count, held_a.popularity, held_a.at_ms) == (2.0, 1.5, 7)
    catalog = ItemCatalog(D)
    for item_id in ("x0", "x1"):
        catalog.upsert(item_id, np.ones(D, np.float32))
    index = NeighbourIndex(CoocConfig())
    index.apply("x0", a)
    rows, weights = index._row(catalog, "x0")
    assert rows.tolist() == [1] and weights.tolist() == [0.5]  # "gone" is not in the catalog
    counts, values, at = index.arrays(catalog)
    assert counts.tolist() == [2.0, 0.0] and values.tolist() == [1.5, 0.0] and at.tolist() == [7.0, 0.0]


def test_worker_scorer_equals_the_evaluators_hybrid() -> None:
    ids, vectors, events = _world(1)
    weights, decay = EventWeights(), DecayConfig(half_life_s=3600.0 * 24)
    states: dict[str, UserState] = {}
    config = InterestConfig(join_cosine=0.3, half_life_s=decay.half_life_s)  # random vectors: several
    signals = Signals(ids, vectors, weights, decay, "space", interests=config)
    for n, (u, i, ts) in enumerate(events):
        signals.update(u, i, ts, None, "view")
        states.update(apply_interactions(
            states, [Interaction(u, f"e{n}", ts, weights.weight("view", None), vectors[i], ids[i])], decay, D,
            "space", interests=config))
    assert max(len(s.interests) for s in states.values()) > 1
    model = train_model(signals.histories, ids, vectors, "space", ALSParams(factors=4, iterations=5))
    signals.use_model(model)
    seq, _ = train_sequence(signals.histories, ids, vectors, "space",
                            SeqParams(max_len=8, width=8, blocks=1, max_epochs=2, threads=1))
    signals.use_sequence(seq)
    policy = BlendPolicy((3,), (BlendWeights(0.4, 0.3, 0.2, 0.05, 0.05),
                                BlendWeights(0.1, 0.2, 0.2, 0.2, 0.3)))
    catalog = ItemCatalog(D)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    cooc = CoocConfig(row_size=N * 2, half_life_s=decay.half_life_s)
    scorer = HybridScorer(catalog, _rows(ids, events, cooc, batch=5),
                          model, policy, fold_in_items=signals.fold_in_items, new_item_slots=0,
                          interests=config, sequence=seq)
    users = sorted(states)
    served, _, _ = scorer.scores([states[u] for u in users])  # (B, N)
    for b, u in enumerate(users):
        available = np.ones(N, bool)
        available[signals.histories[u]] = False
        case = Case(signals.components(u, states[u].updated_ms), available, len(signals.histories[u]), 0,
                    False, np.zeros(N, bool))
        expected = score_cases([case], policy)[0][0, METHODS.index("hybrid")]  # (N,)
        np.testing.assert_allclose(served[b], expected, rtol=1e-4, atol=1e-4)
    top = scorer.top_k({u: states[u] for u in users[:2]}, 5)[users[0]].items
    # the lists are compiled apart from the blend's arrays (`cf.blend_kernel`): the same items up
    # to float rounding, so two within it may swap
    listed = [ids.index(s.item_id) for s in top]
    np.testing.assert_allclose(served[0][listed], np.sort(served[0])[::-1][:5], atol=1e-5)
    np.testing.assert_allclose([s.score for s in top], served[0][listed], atol=1e-5)


def test_a_new_item_on_the_users_topic_is_offered_beside_the_top_k() -> None:
    ids, vectors, events = _world(2)
    catalog = ItemCatalog(D)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    catalog.upsert("new", vectors[0] + 0.01)  # never interacted with, close to i0 by text
    index = _rows(ids, events, CoocConfig(), batch=4)
    decay = DecayConfig(half_life_s=3600.0)
    state = decay_merge(UserState.empty(D), vectors[0], 1.0, 0, decay, item_id="i0")
    policy = BlendPolicy((1,), (BlendWeights(), BlendWeights(0.0, 0.0, 0.5, 0.5)))  # no text at all
    ranked = HybridScorer(catalog, index, None, policy).top_k({"u": state}, 3)["u"]
    assert "new" not in [s.item_id for s in ranked.items]
    assert [s.item_id for s in ranked.new_items] == ["new"]
    none = HybridScorer(catalog, index, None, policy, new_item_slots=0).top_k({"u": state}, 3)["u"]
    assert none.new_items == []


def test_each_listed_item_is_explained_by_the_users_own_newest_catalog_items() -> None:
    """A batch's explanations, made for every user at once, are each user's alone: their newest
    `EXPLAIN_WINDOW` history items, those no longer in the catalog left out."""
    ids, vectors, _ = _world(4)
    catalog = ItemCatalog(D)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    rng = np.random.default_rng(4)
    decay = DecayConfig(half_life_s=3600.0)
    states = {}
    for u, size in enumerate((1, 5, 26, 12)):  # 26 > EXPLAIN_WINDOW: only the newest count
        history = [str(h) for h in rng.choice(ids, size=size, replace=False)]
        history = [h if n % 4 != 2 else f"gone{n}" for n, h in enumerate(history)]  # removed items
        first = vectors[ids.index(history[0])]
        state = decay_merge(UserState.empty(D), first, 1.0, 0, decay, item_id=history[0])
        states[f"u{u}"] = replace(state, history=tuple(history))
    config = CoocConfig()
    ranked = HybridScorer(catalog, NeighbourIndex(config)).top_k(states, 5)
    for u, state in states.items():
        known = [h for h in state.history[-EXPLAIN_WINDOW:] if h in catalog]
        history = np.array([catalog.vector(h) for h in known], np.float64).reshape(len(known), D)
        recency = config.recency_decay ** np.arange(len(known) - 1, -1, -1)  # (H,) newest: 1
        for s, b in zip(ranked[u].items, ranked[u].because, strict=True):
            strengths = history @ catalog.vector(s.item_id).astype(np.float64) * recency  # (H,)
            c = dict(zip(known, strengths, strict=True))
            # the strongest three positive c, in order, by value: an order two equal values
            # could take either way is not what this holds
            want = sorted((v for v in c.values() if v > 1e-6), reverse=True)[:3]
            assert all(h in known and c[h] > -1e-6 for h in b.history)
            np.testing.assert_allclose([c[h] for h in b.history if c[h] > 1e-6], want, atol=1e-6)
    assert any(b.history for r in ranked.values() for b in r.because)
    # z is published at 4 decimals, as JSON writes them: 0.1924, not float32's 0.1923999935...
    z = [v for r in ranked.values() for b in r.because for v in b.components.values()]
    assert any(v != 0.0 for v in z) and all(v == round(v, 4) for v in z)


def test_rows_applied_after_scoring_update_the_arrays_in_place() -> None:
    ids, vectors, events = _world(3)
    catalog = ItemCatalog(D)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    config = CoocConfig()
    live = _rows(ids, events[:40], config, batch=4)
    live.arrays(catalog)  # built once ...
    for item_id, row in _rows(ids, events, config, batch=4).rows.items():
        live.apply(item_id, row)  # ... then kept current row by row
    live.apply(ids[0], None)
    fresh = NeighbourIndex(config)
    for item_id, row in live.rows.items():
        fresh.apply(item_id, row)
    for got, want in zip(live.arrays(catalog), fresh.arrays(catalog), strict=True):
        np.testing.assert_array_equal(got, want)
    recents = [[ids[i] for i in range(5)]]
    np.testing.assert_array_equal(live.cooc_scores(catalog, recents), fresh.cooc_scores(catalog, recents))


def _served_world() -> tuple[HybridScorer, dict[str, UserState]]:
    ids, vectors, events = _world(3)
    decay = DecayConfig(half_life_s=3600.0 * 24)
    states: dict[str, UserState] = {}
    for u, i, ts in events:
        state = states.get(u) or UserState.empty(D, "space")
        states[u] = decay_merge(state, vectors[i], 1.0, ts, decay, item_id=ids[i])
    catalog = ItemCatalog(D)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    histories = {u: [ids.index(i) for i in s.history] for u, s in states.items()}
    model = train_model(histories, ids, vectors, "space", ALSParams(factors=4, iterations=5))
    seq, _ = train_sequence(histories, ids, vectors, "space",
                            SeqParams(max_len=8, width=8, blocks=2, max_epochs=2, threads=1))
    policy = BlendPolicy((1,), (BlendWeights(), BlendWeights(0.2, 0.2, 0.2, 0.1, 0.3)))  # every signal counts
    scorer = HybridScorer(catalog, _rows(ids, events, CoocConfig(), batch=5), model, policy, new_item_slots=0,
                          sequence=seq)
    return scorer, states


def test_every_signal_over_candidate_columns_equals_those_columns_of_the_full_scores() -> None:
    scorer, states = _served_world()
    group = [states[u] for u in sorted(states)]
    cols = np.array([0, 3, 4, 11, 17, 29], dtype=np.intp)
    full, some = scorer.components(group), scorer.components(group, cols)
    assert set(full) == {"text", "cf", "cooc", "popularity", "seq"}
    for name in full:
        np.testing.assert_allclose(some[name], full[name][:, cols], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(scorer.available(group, cols), scorer.available(group)[:, cols])


def test_with_the_index_on_and_every_item_a_candidate_the_lists_are_the_exact_ones() -> None:
    from cf.catalog_index import CatalogIndex

    scorer, states = _served_world()
    exact, exact_6 = scorer.top_k(states, 5), scorer.top_k(states, 6)
    scorer.index = CatalogIndex(scorer.catalog, min_items=10)  # 30 items: the index is on
    scorer.candidates_text, scorer.users_per_pass = N, 5  # ... and finds all of them, 5 users at a time
    assert np.array_equal(scorer.candidates([states[u] for u in states]), np.arange(N))
    indexed = scorer.top_k(states, 5)
    for u in states:
        # the two paths multiply in different shapes, so scores may differ in the last bits: the
        # same list, except that items whose scores are within rounding of each other may swap
        got, want = indexed[u].items, exact[u].items
        assert [s.score for s in got] == pytest.approx([s.score for s in want], abs=1e-5), u
        scores = [s.score for s in want] + [s.score for s in exact_6[u].items][5:]
        for i in range(len(want)):
            tied = any(abs(scores[i] - scores[j]) <= 1e-5 for j in (i - 1, i + 1) if 0 <= j < len(scores))
            assert tied or got[i].item_id == want[i].item_id, (u, i)


def test_above_the_index_threshold_the_sequential_model_brings_its_best_items() -> None:
    from cf.catalog_index import CatalogIndex

    scorer, states = _served_world()
    scorer.neighbours = NeighbourIndex(CoocConfig())  # no co-occurrence rows: they bring no candidates
    scorer.index = CatalogIndex(scorer.catalog, min_items=10)
    scorer.candidates_text, scorer.candidates_popular, scorer.candidates_seq = 1, 0, 3
    group = [states[u] for u in sorted(states)]
    h, items = scorer.sequence_vectors(scorer.history_rows(group)), scorer.sequence_items()
    assert h is not None and items is not None
    best = set(np.argsort(-(h @ items.T), axis=1)[:, :3].ravel().tolist())  # each user's 3 best by seq
    assert best <= set(scorer.candidates(group).tolist())


def test_a_batch_of_many_users_is_ranked_in_the_memory_of_one_pass() -> None:
    """A backlog's batch holds hundreds of users; a process keeps the peak of what it ever
    allocated, so ranking them must not need arrays for all of them at once."""
    import tracemalloc

    rng = np.random.default_rng(5)
    n_items, dim, n_users = 2_000, 16, 240
    ids = [f"i{n}" for n in range(n_items)]
    vectors = rng.normal(size=(n_items, dim)).astype(np.float32)  # (N, D)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = ItemCatalog(dim)
    for item_id, v in zip(ids, vectors, strict=True):
        catalog.upsert(item_id, v)
    events = [Interaction(f"u{u}", f"e{u}-{t}", t * 60_000, 1.0, vectors[i], ids[i])
              for u in range(n_users) for t, i in enumerate(rng.choice(n_items, size=6, replace=False))]
    states = apply_interactions({}, events, DecayConfig(half_life_s=86_400.0), dim, "space", catalog.vector,
                                stored=True)
    scorer = HybridScorer(catalog, NeighbourIndex(CoocConfig()), users_per_pass=30)
    users = sorted(states)

    def peak(group: list[str]) -> int:
        tracemalloc.start()
        try:
            scorer.top_k({u: states[u] for u in group}, 10)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    scorer.top_k({u: states[u] for u in users[:30]}, 10)  # first-call allocations out of the way
    one_pass, eight_passes = peak(users[:30]), peak(users)
    assert eight_passes < 2 * one_pass, (one_pass, eight_passes)


def test_a_search_enters_the_sequence_of_the_next_list() -> None:
    """Through the worker's fold a search becomes a position of the user's sequence, read as
    P v_text: it moves the next list's `seq` signal, and with the model's id rows zeroed it
    reads as consuming the item whose text it is."""
    scorer, states = _served_world()
    assert scorer.sequence is not None
    user = sorted(states)[0]
    state, catalog = states[user], scorer.catalog
    target = next(i for i in catalog.ids if i not in state.history)
    text = catalog.vector(target)
    decay, ts = DecayConfig(half_life_s=3600.0 * 24), state.updated_ms + 1_000

    def after(item_id: str | None) -> UserState:
        event = Interaction(user, "new", ts, 1.0, text, item_id)
        out = apply_interactions({user: state}, [event], decay, D, "space", catalog.vector, stored=True)
        return out[user]

    searched, consumed = after(None), after(target)
    assert [s.after for s in searched.searches] == [0] and searched.history == state.history
    assert consumed.searches == () and consumed.history[-1] == target
    before, now = scorer.components([state])["seq"], scorer.components([searched])["seq"]  # (1, N) each
    assert not np.allclose(before, now, atol=1e-3)
    ids_zeroed = np.zeros_like(scorer.sequence.arrays["id_embeddings"])
    arrays = {**scorer.sequence.arrays, "id_embeddings": ids_zeroed}
    text_only = HybridScorer(catalog, scorer.neighbours, sequence=replace(scorer.sequence, arrays=arrays))
    h_searched, h_consumed = (text_only.sequence_vectors(text_only.history_rows([s]), [s.searches])
                              for s in (searched, consumed))
    assert h_searched is not None and h_consumed is not None
    np.testing.assert_allclose(h_searched, h_consumed, atol=2e-3)  # the search's text kept as float16
