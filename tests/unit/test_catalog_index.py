"""The approximate index follows the catalog and finds what exact search finds."""

from __future__ import annotations

import numpy as np

from cf.catalog import ItemCatalog
from cf.catalog_index import CatalogIndex

D = 32


def clustered(n: int, seed: int) -> np.ndarray:
    """(n, D) unit vectors around 40 topics."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(40, D))
    x = topics[rng.integers(0, 40, n)] + 0.35 * rng.normal(size=(n, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def catalog_of(vectors: np.ndarray, prefix: str = "i") -> ItemCatalog:
    catalog = ItemCatalog(D)
    for n, v in enumerate(vectors):
        catalog.upsert(f"{prefix}{n}", v)
    return catalog


def test_the_candidates_hold_the_exact_top_10() -> None:
    catalog = catalog_of(clustered(6000, 0))
    index = CatalogIndex(catalog, min_items=5000)  # nprobe 16 of 309 cells
    assert index.active
    queries = clustered(100, 1)
    found = index.search(queries, 100)  # (100, 100) catalog rows
    exact = np.argsort(-(queries @ catalog.matrix.T), axis=1)[:, :10]  # (100, 10)
    recall = np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, found, strict=True)])
    assert recall >= 0.95, recall


def test_items_added_changed_and_removed_after_training_are_followed() -> None:
    vectors = clustered(3000, 2)
    catalog = catalog_of(vectors)
    index = CatalogIndex(catalog, min_items=1000, nprobe=8)
    index.search(vectors[:1], 5)  # trained on these 3,000
    fresh = clustered(50, 3)
    for n, v in enumerate(fresh):
        catalog.upsert(f"new{n}", v)
    moved = clustered(1, 4)[0]
    catalog.upsert("i7", moved)  # i7 now points somewhere else
    catalog.remove("i8")  # the last row moves into i8's place
    ids = catalog.ids
    for n in range(0, 50, 7):
        [rows] = index.search(fresh[n][None, :], 1)
        assert ids[rows[0]] == f"new{n}"
    [rows] = index.search(moved[None, :], 1)
    assert ids[rows[0]] == "i7"
    every = index.search(vectors[8][None, :], 50)
    assert "i8" not in {ids[r] for r in every[0] if r >= 0}
    moved_row = catalog.row_of(ids[-1])  # rows stay right after the move
    [rows] = index.search(catalog.matrix[moved_row][None, :], 1)
    assert rows[0] == moved_row


def test_the_index_is_retrained_when_the_catalog_has_doubled() -> None:
    catalog = catalog_of(clustered(1200, 5))
    index = CatalogIndex(catalog, min_items=1000)
    index.search(catalog.matrix[:1], 1)
    first = index._index
    for n, v in enumerate(clustered(1300, 6)):
        catalog.upsert(f"more{n}", v)
    index.search(catalog.matrix[:1], 1)
    assert index._index is not first and index._trained_at == 2500
