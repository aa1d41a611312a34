"""Fine-tuning: the loss, the data split that keeps evaluation targets out, exact resume."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.contrastive import (
    Batches,
    HardNegatives,
    Pair,
    TuneParams,
    finetune,
    info_nce,
    learning_rate_at,
    queries_from,
)
from encoders.loading import load_encoder
from encoders.model_folder import folder_version, resolve_model_folder
from streams.offline.datasets import CatalogItem, Dataset, Interaction
from streams.offline.finetune import documents, scored_from, split, time_cutoff


def test_info_nce_known_answer_and_repeated_targets_are_not_negatives() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # s = [[1, 0], [0, 1]] / tau: loss = -log(e^(1/tau) / (e^(1/tau) + 1))
    loss = info_nce(q, t, torch.tensor([3, 4]), temperature=0.5)
    assert float(loss) == pytest.approx(-math.log(math.e**2 / (math.e**2 + 1)), rel=1e-6)
    same = info_nce(q, t, torch.tensor([3, 3]), temperature=0.5)
    assert float(same) == pytest.approx(0.0, abs=1e-6)  # the other column is masked out
    # logQ: s_ij - log p_j on negatives only; a popular negative weighs less than a rare one
    popular = info_nce(q, t, torch.tensor([3, 4]), 0.5, torch.log(torch.tensor([0.5, 0.5])))
    rare = info_nce(q, t, torch.tensor([3, 4]), 0.5, torch.log(torch.tensor([0.01, 0.01])))
    assert float(popular) == pytest.approx(-math.log(math.e**2 / (math.e**2 + 2)), rel=1e-6)
    assert float(popular) < float(rare)


def test_queries_are_unit_means_of_their_rows() -> None:
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    out = queries_from(vectors, [[0, 1], [2]])
    torch.testing.assert_close(out, torch.tensor([[2**-0.5, 2**-0.5], [1.0, 0.0]]))


def test_batches_are_deterministic_cover_an_epoch_and_learning_rate_warms_up() -> None:
    pairs = [Pair((i,), i + 1) for i in range(10)]
    a, b = Batches(pairs, 3, seed=1), Batches(pairs, 3, seed=1)
    assert [a[n] for n in range(5)] == [b[n] for n in range(5)]
    assert len({p for n in range(3) for p in a[n]}) == 9  # one epoch: no pair twice
    params = TuneParams(steps=100, warmup=0.1, lr=1e-3)
    assert learning_rate_at(0, params) == pytest.approx(1e-4)
    assert learning_rate_at(9, params) == pytest.approx(1e-3)
    assert learning_rate_at(99, params) < 1e-5


def _dataset() -> Dataset:
    genres = ["Horror", "Comedy", "Drama", "Sci-Fi"]
    items = [CatalogItem(str(n), f"Film {n} (199{n % 10})", tags=(genres[n % 4],)) for n in range(24)]
    interactions = []
    for u in range(12):
        for n in range(8):  # each user stays in one genre
            interactions.append(Interaction(f"u{u}", str((u % 4) + 4 * ((n + u) % 6)), 1000 * (8 * u + n)))
    interactions.sort(key=lambda x: x.ts_ms)
    return Dataset("toy", items, interactions)


def test_prequential_split_trains_only_before_the_cutoff() -> None:
    data = _dataset()
    s = split(data, "prequential", train_fraction=0.5, history=3, held_out_items=0.0)
    cutoff = s.metadata["cutoff_ms"]
    assert cutoff == time_cutoff(data.interactions, 0.5)
    index = {i.item_id: n for n, i in enumerate(data.items)}
    before = {(x.user_id, index[x.item_id]) for x in data.interactions if x.ts_ms < cutoff}
    per_user = {u: sum(1 for x in data.interactions if x.user_id == u and x.ts_ms < cutoff)
                for u in {x.user_id for x in data.interactions}}
    assert len(s.train) + len(s.validation) == sum(max(0, n - 1) for n in per_user.values())
    assert s.train and s.validation
    assert all(1 <= len(p.history) <= 3 for p in s.train + s.validation)
    after_only = {index[x.item_id] for x in data.interactions if x.ts_ms >= cutoff} - {i for _, i in before}
    assert not any(p.target in after_only for p in s.train + s.validation)
    assert scored_from(s.metadata, data, "prequential") == cutoff
    with pytest.raises(ValueError, match="--protocol loo"):
        scored_from(s.metadata, data, "loo")
    assert scored_from(s.metadata, Dataset("other", [], []), "loo") is None  # another data set


def test_loo_split_never_sees_a_users_last_two_events() -> None:
    data = _dataset()
    s = split(data, "loo", history=3, held_out_items=0.0)
    assert len(s.validation) == 12  # each user's last training event validates
    assert len(s.train) == 12 * (8 - 2 - 1 - 1)  # 6 kept events -> 5 pairs, one for validation
    with pytest.raises(ValueError, match="--protocol prequential"):
        scored_from(s.metadata, data, "prequential")


def test_held_out_items_are_never_trained_on_and_validate_apart() -> None:
    data = _dataset()
    s = split(data, "prequential", train_fraction=0.9, history=3, held_out_items=0.25, seed=3)
    assert len(s.held_out) == 6 and s.metadata["held_out_items"] == 6
    assert s.validation_items and all(p.target in s.held_out for p in s.validation_items)
    assert not any(p.target in s.held_out for p in s.train + s.validation)
    whole = split(data, "prequential", train_fraction=0.9, history=3, held_out_items=0.0)
    kept = len(s.train) + len(s.validation) + len(s.validation_items)
    assert kept == len(whole.train) + len(whole.validation)
    assert split(data, "prequential", 0.9, 3, 0.25, seed=3).held_out == s.held_out  # seeded


def test_hard_negatives_are_what_cooccurrence_ranks_for_the_history_never_the_target() -> None:
    # 0 -> 1 and 0 -> 2 follow each other often, 0 -> 3 once; 4 is held out
    pairs = [Pair((0,), 1)] * 3 + [Pair((0,), 2)] * 2 + [Pair((0,), 3), Pair((0,), 4), Pair((5,), 0)]
    negatives = HardNegatives(pairs, n_items=6, top=2, banned=frozenset({4}))
    assert sorted(negatives.top[0].tolist()) == [2, 3]  # pair 0 -> 1: its target is not a negative
    assert negatives.top[5][0] == 1  # 0 -> 3: the most co-occurring item first
    assert 4 not in negatives.top  # a held-out item is never drawn
    drawn = negatives.draw([0] * 50 + [7], random.Random(0))
    assert set(drawn[:50]) == {2, 3}
    assert drawn[50] in {0, 1, 2, 3, 5}  # (5,) -> 0 co-occurs with nothing: any allowed item


def test_the_hard_negatives_enter_the_loss_and_mask_a_rows_own_target() -> None:
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    t = q.clone()
    base = info_nce(q, t, torch.tensor([0, 1]), 1.0)
    near = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1]]), dim=1)
    harder = info_nce(q, t, torch.tensor([0, 1]), 1.0, negatives=near, negative_ids=torch.tensor([5]))
    assert harder > base  # a negative close to query 0 costs
    own = info_nce(q, t, torch.tensor([0, 1]), 1.0, negatives=near, negative_ids=torch.tensor([0]))
    assert base < own < harder  # row 0's own target is masked out of its negatives, row 1 keeps it


def _tune(out: Path, steps: int, resume: bool = False, keep: str = "last") -> dict[str, object]:
    data = _dataset()
    s = split(data, "prequential", 0.9, history=3, held_out_items=0.2)
    params = TuneParams(steps=steps, batch=8, checkpoint_every=2, validation_pairs=16, lr=2e-3,
                        keep=keep)  # type: ignore[arg-type]
    return finetune("", documents(data), s.train, s.validation, params, out, s.metadata, resume=resume,
                    validation_items=s.validation_items, held_out=s.held_out)


def test_finetune_writes_a_loadable_versioned_folder_and_resumes_exactly(tmp_path: Path) -> None:
    straight = _tune(tmp_path / "straight", steps=4)
    _tune(tmp_path / "resumed", steps=2)
    resumed = _tune(tmp_path / "resumed", steps=4, resume=True)
    meta = json.loads((tmp_path / "straight" / "finetune.json").read_text())
    assert meta["version"] == straight["version"] == folder_version(tmp_path / "straight")
    assert meta["base"] == folder_version(resolve_model_folder(""))
    assert [e["step"] for e in meta["log"]] == [0, 2, 4]
    digest = str(straight["version"]).split("@")[1]
    assert str(resumed["version"]) == f"resumed@{digest}"  # the same weights, byte for byte
    texts = ["Film 3 (1993). Sci-Fi", "a scary horror film"]
    base = load_encoder("").encode(texts)
    tuned = load_encoder(str(tmp_path / "straight")).encode(texts)  # (2, D) unit rows
    np.testing.assert_allclose(np.linalg.norm(tuned, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(base, tuned, atol=1e-4)  # it moved


def test_the_step_kept_is_the_best_on_held_out_items(tmp_path: Path) -> None:
    info = _tune(tmp_path / "best", steps=4, keep="best")
    log = info["log"]
    assert isinstance(log, list) and all("validation_items_hr10" in e for e in log)
    scores = [e["validation_items_hr10"] for e in log]
    kept = info["kept"]
    assert isinstance(kept, dict) and kept["by"] == "validation_items_hr10"
    assert kept["step"] == log[scores.index(max(scores))]["step"] and kept["score"] == max(scores)
    texts = ["Film 3 (1993). Sci-Fi", "a scary horror film"]
    same_as_base = np.allclose(load_encoder(str(tmp_path / "best")).encode(texts),
                               load_encoder("").encode(texts), atol=1e-5)
    assert same_as_base == (kept["step"] == 0)
