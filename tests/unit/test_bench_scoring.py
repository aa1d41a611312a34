"""The scoring benchmark's exact top-k, recall and synthetic catalog, against brute force."""

from __future__ import annotations

import numpy as np

from streams.bench.scoring import exact_top_k, ivf_top_k, recall, synthetic


def test_exact_top_k_is_brute_force_in_order_and_recall_counts_overlap() -> None:
    rng = np.random.default_rng(3)
    items = rng.standard_normal((500, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    top = exact_top_k(items, queries, k=10)  # (5, 10)
    brute = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(top, brute)
    assert recall(top, brute) == 1.0
    half = np.concatenate([top[:, :5], np.full((5, 5), -1)], axis=1)
    assert recall(half, brute) == 0.5


def test_synthetic_catalog_is_unit_rows_and_an_ivf_index_finds_its_neighbours() -> None:
    import faiss

    rng = np.random.default_rng(0)
    topics = rng.standard_normal((20, 16)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    items, queries = synthetic(topics, 3000, 8)  # (3000, 16), (8, 16)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-5)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, 20, faiss.METRIC_INNER_PRODUCT)
    index.train(items)
    index.add(items)
    index.nprobe = 20  # every cell: exact
    assert recall(ivf_top_k(index, queries), exact_top_k(items, queries)) == 1.0
