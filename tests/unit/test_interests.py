"""Multi-interest state against a slow reference that keeps every event of every interest."""

from __future__ import annotations

import numpy as np
import pytest

from cf.catalog import ItemCatalog
from cf.decay import DecayConfig, decay_merge
from cf.interests import InterestConfig, Interests, interest_weights, merge_interest, multi_text_scores
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


def test_each_interest_finds_its_own_items_where_one_averaged_vector_finds_neither() -> None:
    # a catalog along six directions; the user likes directions 0 and 1 (horror, cooking) equally
    dim = 6
    catalog = ItemCatalog(dim)
    for n in range(dim):
        catalog.upsert(f"axis{n}", np.eye(dim, dtype=np.float32)[n])
    between = np.ones(dim, np.float32) / np.sqrt(dim)
    catalog.upsert("bland", between)  # near everyone's average, close to no one's taste
    state = Interests()
    for t, axis in enumerate([0, 1, 0, 1]):
        state = merge_interest(state, np.eye(dim, dtype=np.float32)[axis], 1.0, t, InterestConfig())
    assert len(state.interests) == 2
    multi = dict(zip(catalog.ids, multi_text_scores(catalog, state), strict=True))
    single_vector = sum(k.vector for k in state.interests)
    single = dict(zip(catalog.ids, cosine_scores(catalog, single_vector[None, :],
                                                 np.array([4.0], np.float32))[0], strict=True))
    assert multi["axis0"] > multi["bland"] and multi["axis1"] > multi["bland"]
    # its own interest's centred cosine (1), discounted for holding half the weight
    assert multi["axis0"] == pytest.approx(1.0 + 0.1 * np.log(0.5), abs=1e-5)
    assert multi["axis0"] - multi["axis2"] > single["axis0"] - single["axis2"]  # sharper than the average
