"""The compiled blend and lists (`cf.blend_kernel`) against numpy's (`cf.hybrid`), its reference.

The two add in different orders, so scores agree to float32 rounding and two items within it
may come in either order: the lists are compared by score, not position, except where the
inputs make a tie exact (the same bits in, the same bits out, on any CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from cf.blend_kernel import blend_lists
from cf.hybrid import COMPONENTS, TEXT, BlendPolicy, BlendWeights, blend_rows, stack, standardise

TOL = 1e-5
POLICY = BlendPolicy((3,), (BlendWeights(0.4, 0.3, 0.2, 0.05, 0.05), BlendWeights(0.1, 0.2, 0.2, 0.2, 0.3)))


def world(seed: int, b_n: int = 12, n: int = 50) -> dict:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, b_n)  # (B,) interest rows per user
    user = np.repeat(np.arange(b_n), counts)  # (R,)
    raw = {name: rng.normal(size=(b_n, n)).astype(np.float32) for name in COMPONENTS if name != "text"}
    raw["popularity"][0] = 1.5  # a signal with nothing to say for one user: z 0
    del raw["seq"]  # a signal the scorer does not have
    available = rng.random((b_n, n)) < rng.choice([0.3, 0.9], size=(b_n, 1))  # (B, N)
    available[1, 3:] = False  # fewer available items than k
    lengths = rng.integers(0, 8, b_n).tolist()
    return {"raw": raw, "text": rng.normal(size=(user.size, n)).astype(np.float32), "user": user,
            "log_share": np.log(rng.uniform(0.1, 1.0, user.size)).astype(np.float32),
            "weights": POLICY.matrix(lengths), "lengths": lengths, "available": available,
            "new": rng.random(n) < 0.4}


def reference(w: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's (B, N) scores, (C, B, N) signals and (R, N) standardised text."""
    z = stack(w["raw"], w["available"])  # (C, B, N)
    z_text = standardise(w["text"], w["available"][w["user"]])  # (R, N)
    blend = blend_rows(z, z_text, w["user"], w["log_share"], POLICY, w["lengths"], w["available"])
    return blend.scores, z, z_text


@pytest.mark.parametrize("seed", range(5))
def test_the_lists_rank_as_numpys_blend_within_rounding(seed: int) -> None:
    w = world(seed)
    k, min_z = 6, 0.5
    lists = blend_lists(w["raw"], w["text"], w["user"], w["log_share"], w["weights"], w["available"],
                        w["new"], k, 1, min_z)
    scores, z, z_text = reference(w)
    picks_checked = 0
    for b in range(scores.shape[0]):
        top = lists.listed[b, :k]
        found = top[top >= 0]
        finite = np.sort(scores[b][np.isfinite(scores[b])])[::-1]  # (n,) best first
        assert found.size == min(k, finite.size) and (top[found.size :] == -1).all()
        np.testing.assert_allclose(lists.values[b, : found.size], scores[b, found], atol=TOL)
        np.testing.assert_allclose(lists.values[b, : found.size], finite[: found.size], atol=TOL)
        assert len(set(found.tolist())) == found.size
        for j, n in enumerate(found):  # the signals as numpy standardised them
            others = [c for c in range(len(COMPONENTS)) if c != TEXT]
            np.testing.assert_allclose(lists.signals[b, j, others], z[others, b, n], atol=1e-4)
            assert w["user"][lists.row[b, j]] == b
            np.testing.assert_allclose(lists.signals[b, j, TEXT], z_text[lists.row[b, j], n], atol=1e-4)
        # the new-item pick: the best new item on topic not in the top-k, when none is near a threshold
        rows = np.flatnonzero(w["user"] == b)
        per = (z_text[rows] * w["weights"][b, TEXT] + w["log_share"][rows, None])  # (R_b, N) up to the rest
        on_topic = z_text[rows[per.argmax(axis=0)], np.arange(scores.shape[1])]  # (N,)
        eligible = w["new"] & np.isfinite(scores[b])
        eligible[found] = False
        if np.any(np.abs(on_topic[eligible] - min_z) < 1e-3):
            continue
        picks_checked += 1
        pool = np.flatnonzero(eligible & (on_topic >= min_z))
        pick = lists.listed[b, k]
        if pool.size == 0:
            assert pick == -1
        else:
            assert pick in pool.tolist()
            assert scores[b, pick] == pytest.approx(scores[b, pool].max(), abs=TOL)
    assert picks_checked > 0


def test_equal_items_are_listed_by_column_and_a_tie_at_the_cut_keeps_the_first() -> None:
    w = world(7, b_n=3, n=20)
    w["available"][:] = True
    for raw in [*w["raw"].values(), w["text"]]:  # columns 4, 9 and 15 the same item three times
        raw[:, 9] = raw[:, 15] = raw[:, 4] = raw.max() + 1.0  # and the best of every signal
    lists = blend_lists(w["raw"], w["text"], w["user"], w["log_share"], w["weights"], w["available"],
                        np.zeros(20, bool), 4, 0, 2.0)
    assert lists.listed[:, :3].tolist() == [[4, 9, 15]] * 3
    cut = blend_lists(w["raw"], w["text"], w["user"], w["log_share"], w["weights"], w["available"],
                      np.zeros(20, bool), 2, 0, 2.0)
    assert cut.listed.tolist() == [[4, 9]] * 3


def test_a_user_with_nothing_available_gets_padding_only() -> None:
    w = world(3, b_n=2, n=10)
    w["available"][0], w["available"][1] = False, True
    lists = blend_lists(w["raw"], w["text"], w["user"], w["log_share"], w["weights"], w["available"],
                        np.ones(10, bool), 3, 2, -10.0)
    assert (lists.listed[0] == -1).all()
    assert (lists.listed[1] >= 0).all()  # everything new and on topic: three listed, two picked
    assert not set(lists.listed[1, 3:].tolist()) & set(lists.listed[1, :3].tolist())
