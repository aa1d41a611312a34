from __future__ import annotations

import math

import numpy as np
import pytest

from cf.cooccurrence import ItemCooccurrence
from cf.decay import DecayConfig
from cf.factors import ALSParams
from cf.popularity import DecayedPopularity, Popularity
from cf.ranking_metrics import RankingTally, rank_of
from cf.weights import EventWeights
from streams.offline.datasets import CatalogItem, Dataset, Interaction
from streams.offline.evaluation import Replay, leave_one_out, prequential, retrain_due


def test_rank_breaks_ties_by_index_like_the_served_order() -> None:
    scores = np.array([0.5, 0.9, 0.5, -np.inf, 0.5], np.float32)
    assert [rank_of(scores, t) for t in (1, 0, 2, 4)] == [0, 1, 2, 3]


def test_tally_known_answer() -> None:
    tally = RankingTally(k=10)
    for rank in (0, 3, 12):
        tally.add(rank)
    s = tally.summary()
    assert s["hr"] == pytest.approx(2 / 3)
    assert s["ndcg"] == pytest.approx((1 + 1 / math.log2(5)) / 3)
    assert s["mrr"] == pytest.approx((1 + 1 / 4) / 3)


def test_decayed_popularity_halves_per_half_life() -> None:
    pop = DecayedPopularity(2, half_life_s=10.0)
    pop.update("u", 0, 0, None)
    pop.update("u", 1, 10_000, None)
    np.testing.assert_allclose(pop.scores("u", 10_000), [0.5, 1.0], rtol=1e-6)
    plain = Popularity(2)
    plain.update("u", 1, 0, None)
    assert plain.scores("u", 0).tolist() == [0.0, 1.0]


def test_cooccurrence_scores_what_followed_before() -> None:
    knn = ItemCooccurrence(4, recent=2)
    for item in (0, 1):
        knn.update("a", item, 0, None)
    knn.update("b", 0, 0, None)
    scores = knn.scores("b", 0)
    assert int(np.argmax(np.where(np.arange(4) == 0, -np.inf, scores))) == 1


def _replay(dataset: Dataset, dim: int = 8) -> Replay:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(dataset.items), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Replay(dataset, vectors, EventWeights(), DecayConfig(half_life_s=3600.0), "test", k=1,
                  train=ALSParams(factors=4, iterations=3))


def _toy(users: int) -> Dataset:
    items = [CatalogItem(str(n), f"item {n}") for n in range(6)]
    sequence = ["3", "1", "5"]  # not in index order: ties (all zero) never guess it
    interactions = [Interaction(f"u{u}", item, 1000 * (3 * u + n), 5.0)
                    for u in range(users) for n, item in enumerate(sequence)]
    return Dataset("toy", items, interactions)


def test_prequential_counts_only_users_with_history_and_learns_a_sequence() -> None:
    replay = _replay(_toy(5))
    prequential(replay, retrain_every=1000, progress=False)
    knn = replay.results["itemknn"].overall.summary()
    assert knn["n"] == 5 * 2  # each user's first event has no history
    assert knn["hr"] == pytest.approx(8 / 10)  # every step after the first user is predicted
    assert replay.results["popularity"].new_users.n == 10
    assert len(replay.scored_ts) == 10


def test_loo_tests_each_users_last_event_after_streaming_the_validation_ones() -> None:
    items = [CatalogItem(str(n), f"item {n}") for n in range(6)]
    sequences = [["3", "1", "5", "2"]] * 5 + [["3", "1", "5"]]  # the last user comes late
    interactions = sorted(
        (Interaction(f"u{u}", item, 1000 * n + (10_000 if u == 5 else u), 5.0)
         for u, seq in enumerate(sequences) for n, item in enumerate(seq)), key=lambda x: x.ts_ms)
    replay = _replay(Dataset("toy", items, interactions))
    validation = leave_one_out(replay, progress=False)
    assert replay.results["cooc"].overall.n == 6  # one test target per user
    assert validation["cooc"]["n"] == 6
    # nobody trains on "5" after "1", but the other users' validation events stream it in
    # before the test: only u5 (test "5") is a hit; "2" was never seen by anyone
    assert replay.results["cooc"].overall.summary()["hr"] == pytest.approx(1 / 6)
    assert len(replay.models) == 1 and len(replay.fits) == 1  # trained once, fitted once


def test_retraining_is_early_then_periodic() -> None:
    due = [n for n in range(1, 50) if retrain_due(n, 16)]
    assert due == [2, 4, 8, 16, 32, 48]


def test_a_scored_window_replays_everything_and_scores_only_its_events() -> None:
    replay = _replay(_toy(5))
    prequential(replay, retrain_every=1000, progress=False, scored_from_ms=1000 * 9)  # from u3 on
    knn = replay.results["itemknn"].overall.summary()
    assert knn["n"] == 2 * 2  # u3, u4: two events with history each
    assert knn["hr"] == pytest.approx(1.0)  # learned from u0..u2, which were replayed unscored
    assert min(replay.scored_ts) >= 9000
