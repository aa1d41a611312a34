"""The served blend and each user's lists, compiled: a few passes over a user's columns, no (B, N)
temporaries.

For user b with interest rows r in R_b (`cf.interests.TextRows`), over the N columns ranked:

    z_c[b, n] = (x_c[b, n] - mean_b(x_c)) / std_b(x_c)      over b's available columns; 0 if std ~ 0
    per[r, n] = w_text(b) z_text[r, n] + log_share[r] + sum_{c != text} w_c(b) z_c[b, n]
    score[b, n] = max_{r in R_b} per[r, n]                   -inf where unavailable
    r*[b, n] = the first r reaching that max                 the interest n came from

    top[b]   = the k best available columns by score, best first, ties by column
    picks[b] = up to S new columns with z_text[r*, n] >= min_z, not in top[b], best first, ties by column

This is `cf.hybrid`'s `standardise` and `blend_rows` (the reference the tests hold it to), then
the top-k and the picks of `best_first` and `new_item_picks` (what the evaluator ranks with),
fused per user: numpy made about twenty passes over (B, N) and (R, N) arrays for it, each a
temporary. Means and variances are
summed in float64 (in vector lanes), the z-scores and scores are float32 as numpy's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from cf.best_kept import keep_best
from cf.compiled import compiled, compiled_sums
from cf.hybrid import COMPONENTS, TEXT

F32 = npt.NDArray[np.float32]
Ints = npt.NDArray[np.intp]
Bools = npt.NDArray[np.bool_]


class Lists(NamedTuple):
    listed: Ints  # (B, k + S) columns: the top-k, then the new-item picks; -1 padding
    values: F32  # (B, L) their scores (padding: column 0's)
    signals: F32  # (B, L, C) their standardised signals in COMPONENTS order, text that of row r*
    row: Ints  # (B, L) r*, the interest row each came from


def blend_lists(raw: Mapping[str, F32], text: F32, user: Ints, log_share: F32, weights: F32,
                available: Bools, new: Bools, k: int, slots: int, min_z: float) -> Lists:
    """Every user's lists (see the module's docstring). raw: each present signal's (B, N) scores
    but text's (a missing one is 0 everywhere); text: (R, N) each interest row's text scores,
    rows grouped by user (`user` (R,) non-decreasing, every user at least one row); log_share:
    (R,); weights: (B, C) each user's blend weights; available: (B, N); new: (N,)."""
    b_n, n = available.shape
    which = [c for c, name in enumerate(COMPONENTS) if c != TEXT and name in raw]
    x = (np.stack([raw[COMPONENTS[c]] for c in which]).astype(np.float32, copy=False) if which
         else np.zeros((0, b_n, n), np.float32))  # (C', B, N)
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])  # (B,)
    counts = np.diff(np.r_[starts, user.size])  # (B,)
    listed, values, signals, row = _lists(
        np.ascontiguousarray(x), np.array(which, np.intp), np.ascontiguousarray(text, np.float32),
        np.ascontiguousarray(available), np.ascontiguousarray(weights, np.float32), TEXT,
        starts.astype(np.intp), counts.astype(np.intp), np.ascontiguousarray(log_share, np.float32),
        np.ascontiguousarray(new), k, slots, np.float32(min_z), len(COMPONENTS))
    return Lists(listed, values, signals, row)


@compiled_sums
def _moments(row: F32, available: Bools) -> tuple[float, float]:
    """(mean, 1 / std) of `row` over the available columns; 1 / std is 0 where std <= 1e-9.
    Summed in float64 in vector lanes: the order of the terms moves the sums by about 1e-16
    relative, which the float32 z-scores made from them do not hold."""
    total, count = 0.0, 0
    for n in range(row.size):
        on = available[n]
        total += row[n] if on else 0.0
        count += 1 if on else 0
    count = max(count, 1)
    mean = total / count
    squares = 0.0
    for n in range(row.size):
        d = row[n] - mean
        squares += d * d if available[n] else 0.0
    std = np.sqrt(squares / count)
    return mean, (1.0 / std if std > 1e-9 else 0.0)


@compiled
def _lists(x: F32, which: Ints, text: F32, available: Bools, weights: F32, text_c: int, starts: Ints,
           counts: Ints, log_share: F32, new: Bools, k: int, slots: int, min_z: np.float32,
           signals_n: int) -> tuple[Ints, F32, F32, Ints]:
    """`blend_lists` on arrays: x (C', B, N) the present signals (which: (C',) their COMPONENTS
    index); text (R, N); starts, counts (B,) each user's rows."""
    b_n, n_cols = available.shape
    length = k + slots
    listed = np.full((b_n, length), -1, np.intp)  # (B, L)
    values = np.zeros((b_n, length), np.float32)  # (B, L)
    signals = np.zeros((b_n, length, signals_n), np.float32)  # (B, L, C)
    rows = np.zeros((b_n, length), np.intp)  # (B, L)
    rest = np.empty(n_cols, np.float32)  # (N,) sum_{c != text} w_c z_c
    score = np.empty(n_cols, np.float32)  # (N,) max_r per[r, n]
    z_text = np.empty(n_cols, np.float32)  # (N,) z_text[r*, n]
    chosen = np.empty(n_cols, np.intp)  # (N,) r*
    means = np.zeros(x.shape[0], np.float32)  # (C',)
    scales = np.zeros(x.shape[0], np.float32)  # (C',) 1 / std
    top_values = np.empty(max(k, 1), np.float32)  # (k,) best first
    top_cols = np.empty(max(k, 1), np.intp)  # (k,)
    minus_inf = np.float32(-np.inf)
    for b in range(b_n):
        mask = available[b]  # (N,)
        rest[:] = 0.0
        for s in range(x.shape[0]):
            mean, scale = _moments(x[s, b], mask)
            means[s], scales[s] = mean, scale
            w_scale, shift, xs = np.float32(weights[b, which[s]] * scale), np.float32(mean), x[s, b]
            for n in range(n_cols):
                rest[n] += w_scale * (xs[n] - shift)
        w_text = weights[b, text_c]
        first = starts[b]
        for r in range(first, first + counts[b]):
            mean, scale = _moments(text[r], mask)
            shift, scale32, share, tr = np.float32(mean), np.float32(scale), log_share[r], text[r]
            if r == first:
                for n in range(n_cols):
                    z = (tr[n] - shift) * scale32
                    score[n], z_text[n], chosen[n] = w_text * z + share, z, r
                continue
            for n in range(n_cols):  # a later row only where strictly larger: the first of equal maxima
                z = (tr[n] - shift) * scale32
                v = w_text * z + share
                larger = v > score[n]  # selects, not branches: the loop runs in vector lanes
                score[n] = v if larger else score[n]
                z_text[n] = z if larger else z_text[n]
                chosen[n] = r if larger else chosen[n]
        filled = 0  # the top-k so far, kept sorted by insertion: columns come in order, so ties by column
        for n in range(n_cols):
            if not mask[n]:
                score[n] = minus_inf
                continue
            s = score[n] + rest[n]
            score[n] = s
            filled = keep_best(top_values, top_cols, filled, k, s, n)
        listed[b, :filled] = top_cols[:filled]
        for slot in range(slots):
            best, at = minus_inf, -1
            for n in range(n_cols):
                if new[n] and mask[n] and score[n] > best and z_text[n] >= min_z:
                    taken = False
                    for j in range(filled):
                        taken |= top_cols[j] == n
                    for j in range(slot):
                        taken |= listed[b, k + j] == n
                    if not taken:
                        best, at = score[n], n
            listed[b, k + slot] = at
        for j in range(length):
            n = max(listed[b, j], 0)  # padding read as column 0, dropped by the caller
            values[b, j], rows[b, j] = score[n], chosen[n]
            signals[b, j, text_c] = z_text[n] if mask[n] else 0.0
            for s in range(x.shape[0]):
                signals[b, j, which[s]] = (x[s, b, n] - means[s]) * scales[s] if mask[n] else 0.0
    return listed, values, signals, rows


def warm_up() -> None:
    """Compile the kernel (or load it from numba's cache) now, not in the first batch's time."""
    rng = np.random.default_rng(0)
    b_n, n = 2, 8
    raw = {"cooc": rng.random((b_n, n), dtype=np.float32)}
    blend_lists(raw, rng.random((b_n, n), dtype=np.float32), np.arange(b_n), np.zeros(b_n, np.float32),
                np.full((b_n, len(COMPONENTS)), 0.2, np.float32), np.ones((b_n, n), bool), np.ones(n, bool),
                3, 1, 0.0)
