"""The sequential model: numpy serving equals the torch network it was trained as, it learns a
known sequence, ranks an item it never saw by its text, and round-trips through its files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cf.sequence import SequenceModel
from cf.sequence_train import SeqParams, _Net, _warm_start, _windows, train_sequence

D = 16
SMALL = SeqParams(max_len=6, width=16, blocks=2, heads=2, dropout=0.0, id_dropout=0.0, lr=5e-3,
                  batch=32, max_epochs=60, patience=60, threads=1)


def _text(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)  # (N, D) unit rows


def _cycles(users: int, n: int, length: int) -> dict[str, list[int]]:
    """Every user walks the items in a cycle 0 -> 1 -> ... -> n-1 -> 0 from their own start."""
    return {f"u{u}": [(u + t) % n for t in range(length)] for u in range(users)}


@pytest.mark.parametrize(("blocks", "heads"), [(1, 1), (2, 2), (3, 1)])
def test_numpy_serving_equals_the_torch_network(blocks: int, heads: int) -> None:
    torch.manual_seed(3)
    text = _text(12)
    params = SeqParams(**{**SMALL.__dict__, "inner": 24, "blocks": blocks, "heads": heads})
    net = _Net(torch.from_numpy(text), params).eval()
    with torch.no_grad():
        for p in net.parameters():  # away from the initialisation's near-zero biases and unit norms
            p.add_(torch.randn_like(p) * 0.1)
    ids = tuple(f"i{n}" for n in range(12))
    model = SequenceModel(ids, net.arrays(), heads, "space", "v")
    histories = [np.array([3, 1, 5]), np.array([], np.intp), np.arange(12), np.array([-1, 2, -1, 7])]
    windows = model.window(histories)  # (B, L)
    assert windows[0].tolist() == [-1, -1, -1, 3, 1, 5] and (windows[1] == -1).all()
    assert windows[2].tolist() == list(range(6, 12)) and windows[3].tolist() == [-1, -1, -1, -1, 2, 7]
    items = model.aligned(ids, text)  # (N, d)
    with torch.no_grad():
        expected_items = net.items().numpy()
        expected = net(torch.from_numpy(windows), net.items())[:, -1].numpy()  # (B, d)
    np.testing.assert_allclose(items, expected_items, rtol=1e-5, atol=1e-5)
    got = model.represent(items, windows)  # (B, d)
    np.testing.assert_allclose(got[[0, 2, 3]], expected[[0, 2, 3]], rtol=1e-4, atol=1e-4)
    assert not got[1].any()  # no item: no representation
    for b in range(len(histories)):  # a user's representation does not depend on who shares the batch
        alone = model.represent(items, windows[b : b + 1])[0]  # (d,)
        np.testing.assert_allclose(alone, got[b], rtol=1e-5, atol=1e-5)


def test_windows_cover_every_transition_of_a_long_history() -> None:
    inputs, targets = _windows([list(range(10)), [4]], length=4)
    pairs = {(int(x), int(y)) for xs, ys in zip(inputs, targets, strict=True)
             for x, y in zip(xs, ys, strict=True) if y >= 0}
    assert pairs == {(t, t + 1) for t in range(9)}  # one-item histories bring none
    assert inputs.shape == (3, 4) and (inputs[targets < 0] == -1).all()


def test_it_learns_a_known_sequence_and_stops_on_validation() -> None:
    n = 20
    model, log = train_sequence(_cycles(60, n, 8), [f"i{k}" for k in range(n)], _text(n), "space", SMALL)
    assert log.best_ndcg > 0.9 and len(log.epochs) <= SMALL.max_epochs
    items = model.aligned(model.item_ids, _text(n))
    histories = [np.array([5, 6, 7]), np.array([19])]
    scores = model.scores(items, histories)  # (B, N)
    for b, h in enumerate(histories):
        scores[b, h] = -np.inf  # served over the items the user has not consumed
    assert scores.argmax(axis=1).tolist() == [8, 0]


def test_an_item_it_never_saw_is_ranked_by_its_text() -> None:
    n = 20
    text = _text(n + 1)
    text[n] = text[4]  # a new item that reads like item 4
    params = SeqParams(**{**SMALL.__dict__, "id_dropout": 1.0})  # text alone places every item
    model, _ = train_sequence(_cycles(60, n, 8), [f"i{k}" for k in range(n)], text[:n], "space", params)
    ids = [f"i{k}" for k in range(n)] + ["new"]
    scores = model.scores(model.aligned(ids, text), [np.array([1, 2, 3])])[0]  # (N + 1,)
    assert "new" not in model.item_ids
    assert set(np.argsort(-scores)[:2].tolist()) == {4, n}


def test_a_warm_start_keeps_what_the_last_model_knew(tmp_path: Path) -> None:
    n = 8
    first, _ = train_sequence(_cycles(20, n, 10), [f"i{k}" for k in range(n)], _text(n), "space",
                              SeqParams(**{**SMALL.__dict__, "max_epochs": 3}))
    first.save(tmp_path)
    loaded = SequenceModel.load(tmp_path)
    assert loaded.version == first.version and loaded.item_ids == first.item_ids
    assert all(np.array_equal(loaded.arrays[k], first.arrays[k]) for k in first.arrays)
    ids = (*first.item_ids[1:], "i-new")  # one item gone, one new
    net = _Net(torch.from_numpy(_text(n)), SMALL)
    _warm_start(net, ids, loaded)
    rows = net.arrays()
    np.testing.assert_array_equal(rows["id_embeddings"][: n - 1], first.arrays["id_embeddings"][1:])
    np.testing.assert_array_equal(rows["block1.ff2.weight"], first.arrays["block1.ff2.weight"])


def test_a_folder_of_another_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sequence.json").write_text('{"format": "other/9"}')
    with pytest.raises(ValueError, match="interests-seq/1"):
        SequenceModel.load(tmp_path)


def _served_model(n: int = 12) -> tuple[SequenceModel, np.ndarray]:
    torch.manual_seed(4)
    text = _text(n, seed=1)
    net = _Net(torch.from_numpy(text), SMALL).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return SequenceModel(tuple(f"i{k}" for k in range(n)), net.arrays(), SMALL.heads, "space", "v"), text


def test_a_search_enters_the_window_where_it_happened() -> None:
    model, _ = _served_model()
    histories = [np.array([3, 1, 5]), np.array([2]), np.array([], np.intp), np.array([4, -1, 6])]
    # user 0 searched before their last two items and after all of them; user 2 searched with no
    # history; user 3's search is older than the history it still has
    windows = model.window(histories, [[2, 0], [], [0], [9]])
    assert windows[0].tolist() == [-1, 3, -2, 1, 5, -3]
    assert windows[1].tolist() == [-1] * 5 + [2]
    assert windows[2].tolist() == [-1] * 5 + [-4]
    assert windows[3].tolist() == [-1] * 3 + [-5, 4, 6]
    assert np.array_equal(model.window(histories, None), model.window(histories))


def test_a_search_reads_as_the_item_of_its_text_where_the_id_row_is_zero() -> None:
    """e_i = E_id[i] + P v_i and a search is P v_text: without id rows, searching an item's text
    and consuming that item give the same representation; with them, not."""
    model, text = _served_model()
    items = model.aligned(model.item_ids, text)  # (N, d)
    consumed = model.represent(items, model.window([np.array([3, 1, 5])]))  # (1, d)
    searched = model.represent(items, model.window([np.array([3, 1])], [[0]]), model.project(text[5:6]))
    assert not np.allclose(searched, consumed, atol=1e-4)
    arrays = {**model.arrays, "id_embeddings": np.zeros_like(model.arrays["id_embeddings"])}
    text_only = SequenceModel(model.item_ids, arrays, model.heads, model.space, model.version)
    items = text_only.aligned(model.item_ids, text)
    consumed = text_only.represent(items, text_only.window([np.array([3, 1, 5])]))
    searched = text_only.represent(items, text_only.window([np.array([3, 1])], [[0]]),
                                   text_only.project(text[5:6]))
    np.testing.assert_allclose(searched, consumed, rtol=1e-5, atol=1e-5)
