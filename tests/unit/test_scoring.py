from __future__ import annotations

import numpy as np
import pytest

from cf.catalog import ItemCatalog
from cf.reference import top_k_loop
from cf.scoring import ROWS_FIRST, cosine_scores, top_k


def catalog_of(vectors: np.ndarray) -> ItemCatalog:
    catalog = ItemCatalog(vectors.shape[1], capacity=2)
    for n, v in enumerate(vectors):
        catalog.upsert(f"item{n}", v)
    return catalog


def random_items(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_user_equal_to_item_7_gets_item_7_first() -> None:
    items = random_items(50, 16, seed=0)
    catalog = catalog_of(items)
    # three events on item 7: u = 3 e_7, s = 3, so u - s m = 3 (e_7 - m): centred cosine 1
    [ranked] = top_k(catalog, 3.0 * items[7:8], np.array([3.0], np.float32), [[]], k=5)
    assert ranked[0].item_id == "item7"
    assert ranked[0].score == pytest.approx(1.0, abs=1e-5)
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)


def test_consumed_items_are_never_recommended() -> None:
    items = random_items(30, 8, seed=1)
    catalog = catalog_of(items)
    [ranked] = top_k(catalog, items[3:4], np.ones(1, np.float32), [["item3", "item9", "not-in-catalog"]],
                     k=30)
    ids = [s.item_id for s in ranked]
    assert "item3" not in ids and "item9" not in ids
    assert len(ids) == 28


def test_matches_the_loop_reference() -> None:
    items = random_items(200, 12, seed=2)
    catalog = catalog_of(items)
    users = np.random.default_rng(3).normal(size=(5, 12)).astype(np.float32)
    excluded = [[f"item{j}" for j in range(i, 200, 17)] for i in range(5)]
    sums = np.linspace(-2, 3, 5).astype(np.float32)
    for weight_sums in (None, sums):
        fast = top_k(catalog, users, weight_sums, excluded, k=10)
        for b in range(5):
            s_b = None if weight_sums is None else float(weight_sums[b])
            slow = top_k_loop(catalog.ids, catalog.matrix, users[b], set(excluded[b]), 10, s_b)
            assert [s.item_id for s in fast[b]] == [i for i, _ in slow]
            np.testing.assert_allclose([s.score for s in fast[b]], [s for _, s in slow], rtol=1e-4,
                                       atol=1e-6)


def test_zero_interest_and_empty_catalog_give_empty_lists() -> None:
    catalog = catalog_of(random_items(5, 4, seed=4))
    assert top_k(catalog, np.zeros((1, 4), np.float32), np.zeros(1, np.float32), [[]], k=3) == [[]]
    assert top_k(ItemCatalog(4), np.ones((2, 4), np.float32), None, [[], []], k=3) == [[], []]
    with pytest.raises(ValueError):
        top_k(catalog, np.ones((1, 5), np.float32), None, [[]], k=3)


def test_catalog_upsert_replace_and_remove() -> None:
    items = random_items(5, 4, seed=5)
    catalog = catalog_of(items)
    catalog.upsert("item1", 2.0 * items[0])
    np.testing.assert_allclose(catalog.vector("item1"), items[0], rtol=1e-6)
    assert catalog.remove("item0") and not catalog.remove("item0")
    assert len(catalog) == 4 and "item0" not in catalog
    assert sorted(catalog.ids) == ["item1", "item2", "item3", "item4"]
    for item_id in catalog.ids:
        row = catalog.row_of(item_id)
        assert row is not None
        np.testing.assert_array_equal(catalog.matrix[row], catalog.vector(item_id))
    rows = catalog.rows_or_missing(["item3", "item0", "item1"])  # a removed item has no row
    assert rows.dtype == np.intp and rows.tolist() == [catalog.row_of("item3"), -1, catalog.row_of("item1")]
    assert catalog.rows_or_missing(iter(["item1"]), 1).tolist() == [catalog.row_of("item1")]
    assert catalog.rows_or_missing([]).shape == (0,)
    with pytest.raises(ValueError):
        catalog.upsert("zero", np.zeros(4, np.float32))


def test_catalog_mean_stays_exact_through_changes() -> None:
    items = random_items(40, 6, seed=6)
    catalog = catalog_of(items)
    catalog.upsert("item3", items[0])
    for item_id in ("item5", "item39", "item0"):
        catalog.remove(item_id)
    np.testing.assert_allclose(catalog.mean, catalog.matrix.mean(axis=0), atol=1e-6)
    centred = catalog.matrix - catalog.matrix.mean(axis=0)
    np.testing.assert_allclose(catalog.centring[1], 1 / np.linalg.norm(centred, axis=1), rtol=1e-4)


def test_many_rows_score_as_each_row_alone() -> None:
    """From `ROWS_FIRST` rows the product runs the other way round: the same scores."""
    rng = np.random.default_rng(3)
    catalog = ItemCatalog(16)
    for n, v in enumerate(rng.normal(size=(50, 16)).astype(np.float32)):
        catalog.upsert(f"i{n}", v / np.linalg.norm(v))
    users = rng.normal(size=(ROWS_FIRST + 6, 16)).astype(np.float32)  # (B, D)
    sums = rng.uniform(0.5, 3.0, size=ROWS_FIRST + 6).astype(np.float32)  # (B,)
    together = cosine_scores(catalog, users, sums)  # (B, N)
    alone = np.concatenate([cosine_scores(catalog, users[b : b + 1], sums[b : b + 1])
                            for b in range(len(users))])  # (B, N)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    cols = np.array([3, 7, 40])
    np.testing.assert_allclose(cosine_scores(catalog, users, sums, cols), together[:, cols], atol=1e-5)
