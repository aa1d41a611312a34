from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares

from cf.factors import ALSParams, FactorModel, fit_projection, fold_in, train_model


def test_fold_in_is_implicits_recalculate_user() -> None:
    """The reference: implicit's own ALS user step on a trained model."""
    rng = np.random.default_rng(1)
    matrix = sp.csr_matrix((rng.random((30, 40)) < 0.2).astype(np.float32))  # (U, M) binary
    als = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=3.0, iterations=5,
                                  random_state=0, use_gpu=False)
    als.fit(matrix, show_progress=False)
    items = [2, 7, 11, 30]
    row = sp.csr_matrix((np.ones(len(items), np.float32), ([0] * len(items), items)), shape=(1, 40))
    expected = als.recalculate_user(0, row)  # (F,)
    y = np.asarray(als.item_factors, dtype=np.float32)
    gram = y.astype(np.float64).T @ y + 0.1 * np.eye(8)
    got = fold_in(y, gram, [items, []], alpha=3.0)  # (2, F)
    np.testing.assert_allclose(got[0], expected, rtol=1e-3, atol=1e-4)
    assert not got[1].any()  # no items, no factor


def test_projection_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(2)
    text = rng.normal(size=(200, 6)).astype(np.float32)
    true = rng.normal(size=(6, 3)).astype(np.float32)
    w = fit_projection(text, text @ true, ridge=1e-6)
    np.testing.assert_allclose(w, true, atol=1e-3)


def test_model_round_trips_and_maps_unknown_items_through_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    text = rng.normal(size=(12, 5)).astype(np.float32)  # (N, D)
    histories = {f"u{u}": [int(i) for i in rng.choice(10, size=4, replace=False)] for u in range(20)}
    ids = [f"i{n}" for n in range(12)]
    model = train_model(histories, ids, text, "space-a", ALSParams(factors=3, iterations=3))
    assert set(model.item_ids) <= set(ids[:10])  # items 10 and 11 were never consumed
    loaded = FactorModel.load(model.save(tmp_path / "cf"))
    assert loaded.version == model.version and loaded.item_ids == model.item_ids
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    aligned = loaded.aligned(["i11", model.item_ids[0]], text[[11, 0]])  # (2, F)
    np.testing.assert_allclose(aligned[0], text[11] @ model.projection, rtol=1e-5)
    np.testing.assert_array_equal(aligned[1], model.item_factors[0])


def test_load_refuses_another_format(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="interests-cf/1"):
        FactorModel.load(tmp_path)
