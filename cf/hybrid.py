"""The hybrid score: text interest, collaborative filtering, co-occurrence, popularity and the
sequential model (`cf.sequence`), each standardised per user over the items that user may still
get, then mixed with fitted weights.

    z_c[b, n] = (s_c[b, n] - mean_b(s_c)) / std_b(s_c)     over available items n; 0 if std = 0
    score[b, n] = sum_c w_c(h_b) z_c[b, n],   w >= 0, sum_c w_c = 1

Standardising makes the weights comparable across signals of different scales (cosines, dot
products, counts) and per user: a signal that says nothing for a user (a new user's empty
co-occurrence row) is all zeros there and leaves the others to decide.
The weights depend on the user's history length h_b through a few buckets (a new user is
best served by popularity and co-occurrence, a long history by its factors and text), and each
bucket's weights are fitted on validation targets by a grid search over the simplex (NDCG@k):
each validation case is scored once under every grid point (`grid_gains`), and a fit is a sum.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
COMPONENTS = ("text", "cf", "cooc", "popularity", "seq")
TEXT = COMPONENTS.index("text")
SEQ = COMPONENTS.index("seq")
HISTORY_BUCKETS = (1, 10, 40, 120)  # upper bounds (exclusive) of history length; the last is open
MIN_CASES_PER_BUCKET = 100  # fewer validation cases: the bucket keeps its prior weights


@dataclass(frozen=True)
class BlendWeights:
    text: float = 0.1
    cf: float = 0.1
    cooc: float = 0.5
    popularity: float = 0.3
    seq: float = 0.0  # a blend fitted without the sequence model (an older artifact) has none

    def as_array(self) -> F32:
        return np.array([getattr(self, c) for c in COMPONENTS], dtype=np.float32)  # (C,)

    @classmethod
    def from_array(cls, w: npt.ArrayLike) -> BlendWeights:
        values = np.asarray(w, dtype=np.float64).round(6)
        return cls(**{c: float(v) for c, v in zip(COMPONENTS, values, strict=True)})

    def to_json(self) -> dict[str, float]:
        return {c: float(getattr(self, c)) for c in COMPONENTS}


def prior_weights() -> tuple[BlendWeights, ...]:
    """Before any fit: a user who consumed nothing (only searched) is ranked by text alone,
    everyone else by a co-occurrence-led mix."""
    return (BlendWeights(1.0, 0.0, 0.0, 0.0),) + (BlendWeights(),) * len(HISTORY_BUCKETS)


@dataclass(frozen=True)
class BlendPolicy:
    """Weights per history-length bucket: bucket b holds users with bounds[b-1] <= h < bounds[b]."""

    bounds: tuple[int, ...] = HISTORY_BUCKETS
    weights: tuple[BlendWeights, ...] = field(default_factory=prior_weights)

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.bounds) + 1:
            raise ValueError("one BlendWeights per bucket: len(bounds) + 1")

    def bucket(self, history_lengths: npt.ArrayLike) -> npt.NDArray[np.intp]:
        return np.searchsorted(np.asarray(self.bounds), np.asarray(history_lengths), side="right")

    def matrix(self, history_lengths: Sequence[int]) -> F32:
        """(B, C) each user's weights."""
        table = np.stack([w.as_array() for w in self.weights])  # (K, C)
        return table[self.bucket(history_lengths)]

    def to_json(self) -> dict[str, object]:
        return {"bounds": list(self.bounds), "weights": [w.to_json() for w in self.weights]}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BlendPolicy:
        bounds = tuple(int(b) for b in data["bounds"])  # type: ignore[attr-defined]
        weights = tuple(BlendWeights(**w) for w in data["weights"])  # type: ignore[attr-defined]
        return cls(bounds, weights)


def standardise(scores: F32, available: npt.NDArray[np.bool_] | F32, out: F32 | None = None) -> F32:
    """(..., B, N) z-scores over each row's available items (mask (B, N), bool or float32 0/1);
    unavailable entries 0. out: where to write them (it may be `scores` itself); a new array when
    None."""
    # in place where it can: this runs over every signal and every interest of every batch
    mask = available if available.dtype == np.float32 else available.astype(np.float32)  # (B, N)
    n = np.maximum(mask.sum(axis=-1), 1.0)  # (B,)
    mean = np.einsum("...bn,bn->...b", scores, mask) / n  # (..., B)
    centred = np.subtract(scores, mean[..., None], dtype=np.float32, out=out)  # (..., B, N)
    centred *= mask
    std = np.sqrt(np.einsum("...bn,...bn->...b", centred, centred) / n)  # (..., B)
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 1e-9).astype(np.float32)  # (..., B)
    centred *= scale[..., None]
    return centred


def stack(components: Mapping[str, F32], available: npt.NDArray[np.bool_]) -> F32:
    """(C, B, N) standardised components in COMPONENTS order; a missing one is all zeros."""
    z = np.zeros((len(COMPONENTS), *available.shape), np.float32)  # (C, B, N)
    mask = available.astype(np.float32)  # (B, N) once for every signal
    for n, name in enumerate(COMPONENTS):
        if name in components:  # straight into its row: no (P, B, N) copy of the raw signals
            standardise(components[name], mask, out=z[n])
    return z


def blend(z: F32, policy: BlendPolicy, history_lengths: Sequence[int],
          available: npt.NDArray[np.bool_]) -> F32:
    """(B, N) hybrid scores from (C, B, N) standardised components; -inf where unavailable."""
    mixed = np.einsum("bc,cbn->bn", policy.matrix(history_lengths), z)  # (B, N)
    return np.where(available, mixed, -np.inf).astype(np.float32)


def blend_interests(z: F32, z_text: F32, log_share: F32, policy: BlendPolicy, history_lengths: Sequence[int],
                    available: npt.NDArray[np.bool_]) -> tuple[F32, npt.NDArray[np.intp], F32]:
    """The blend with one text signal per interest (`cf.interests`), each item kept by the interest
    that ranks it best, a less current interest discounted:

        score[b, n] = max_k ( sum_{c != text} w_c z_c[b, n] + w_text z_text[k, b, n] + log_share[k, b] )

    z: (C, B, N) standardised signals (its text row is not used); z_text: (K, B, N) each interest's
    standardised text; log_share: (K, B), -inf for padding. Returns the (B, N) scores (-inf where
    unavailable), the (B, N) interest row k* each item came from, and z with the text row that
    of k*. With one interest and log_share 0 this is `blend`."""
    w = policy.matrix(history_lengths)  # (B, C)
    w_text = w[:, TEXT].copy()  # (B,)
    w[:, TEXT] = 0.0
    rest = np.einsum("bc,cbn->bn", w, z)  # (B, N)
    per = w_text[None, :, None] * z_text  # (K, B, N)
    per += rest[None]
    per += log_share[:, :, None]
    if per.shape[0] == 1:  # one interest each: nothing to choose
        chosen = np.zeros(per.shape[1:], np.intp)  # (B, N)
        mixed = per[0]
    else:
        chosen = per.argmax(axis=0)  # (B, N)
        mixed = np.take_along_axis(per, chosen[None], axis=0)[0]  # (B, N) the max, without a second pass
    z = z.copy()
    one = z_text.shape[0] == 1
    z[TEXT] = z_text[0] if one else np.take_along_axis(z_text, chosen[None], axis=0)[0]  # (B, N)
    return np.where(available, mixed, -np.inf).astype(np.float32, copy=False), chosen, z


@dataclass(frozen=True)
class RowBlend:
    """`blend_interests` over unpadded interest rows (`cf.interests.TextRows`): the same scores,
    without a (K, B, N) layout for users of fewer than K interests, and the interest an item
    came from looked up only where it is asked for (`chosen`)."""

    scores: F32  # (B, N) max over the user's rows; -inf where unavailable
    per_row: F32  # (R, N) sum_{c != text} w_c z_c + w_text z_text[r] + log_share[r]
    starts: npt.NDArray[np.intp]  # (B,) each user's first row
    counts: npt.NDArray[np.intp]  # (B,) each user's rows

    def chosen(self, cols: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """(B, L) the row each user's item at (B, L) columns `cols` came from: the first of the
        user's rows with the largest `per_row` there, as `argmax` over the padded layout."""
        most = int(self.counts.max(initial=1))  # K: the most rows of a user
        k = np.arange(most)  # (K,)
        rows = np.minimum(self.starts[None, :] + k[:, None], self.per_row.shape[0] - 1)  # (K, B)
        values = self.per_row[rows[:, :, None], cols[None, :, :]]  # (K, B, L)
        values[k[:, None] >= self.counts[None, :]] = -np.inf  # padding rows never win
        return self.starts[:, None] + values.argmax(axis=0)  # (B, L)

    def chosen_values(self, cols: npt.NDArray[np.intp], values: F32) -> F32:
        """(B, M) `values` (R, N) at the row each user's item at the columns `cols` (M,), the same
        for every user, came from (`chosen`): each user's rows walked in order, a later row taken
        only where it is strictly larger (so the first of equal maxima, as `argmax`), a user past
        their last row reading it again (never larger). A handful of (B, M) passes, no (K, B, M)
        gather. cols: distinct and increasing (every column: no copy of the rows)."""
        every = cols.size == self.per_row.shape[1]
        per = self.per_row if every else self.per_row[:, cols]  # (R, M)
        picked = values if every else values[:, cols]  # (R, M)
        best, out = per[self.starts], picked[self.starts]  # (B, M), (B, M)
        last = self.starts + self.counts - 1  # (B,)
        for k in range(1, int(self.counts.max(initial=1))):
            rows = np.minimum(self.starts + k, last)  # (B,)
            candidate = per[rows]  # (B, M)
            larger = candidate > best  # (B, M)
            np.copyto(best, candidate, where=larger)
            np.copyto(out, picked[rows], where=larger)
        return out


def blend_rows(z: F32, z_text: F32, user: npt.NDArray[np.intp], log_share: F32, policy: BlendPolicy,
               history_lengths: Sequence[int], available: npt.NDArray[np.bool_]) -> RowBlend:
    """`blend_interests` with z_text (R, N) and log_share (R,) one row per interest, rows grouped
    by user (`user` (R,) non-decreasing, every user at least one row):

        per[r, n] = sum_{c != text} w_c(h_u) z_c[u, n] + w_text(h_u) z_text[r, n] + log_share[r],  u = user[r]
        score[u, n] = max_{r of u} per[r, n]

    z: (C, B, N) standardised signals (its text row is not used)."""
    w = policy.matrix(history_lengths)  # (B, C)
    w_text = w[:, TEXT].copy()  # (B,)
    w[:, TEXT] = 0.0
    rest = np.einsum("bc,cbn->bn", w, z)  # (B, N)
    per = z_text * w_text[user][:, None]  # (R, N)
    per += rest[user]
    per += log_share[:, None]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])  # (B,)
    counts = np.diff(np.r_[starts, user.size])  # (B,)
    # max over each user's rows: row starts + k, or the user's last row again once past it (K is a
    # handful; `np.maximum.reduceat` along axis 0 is ten times slower)
    mixed = per[starts]  # (B, N)
    last = starts + counts - 1  # (B,)
    for k in range(1, int(counts.max(initial=1))):
        np.maximum(mixed, per[np.minimum(starts + k, last)], out=mixed)
    return RowBlend(np.where(available, mixed, -np.inf).astype(np.float32, copy=False), per, starts, counts)


def simplex_grid(n: int, steps: int) -> F32:
    """(G, n) every weight vector with entries in {0, 1/steps, ..., 1} summing to 1."""
    points = [p for p in itertools.product(range(steps + 1), repeat=n) if sum(p) == steps]
    return (np.array(points, dtype=np.float32) / np.float32(steps)).astype(np.float32)


# Two items whose blended scores differ by less than this are tied. Rounding in the (G, C) x (C, m)
# product depends on the BLAS kernel (gemm or gemv, FMA or not): a tie decided by the sign of a
# rounding error would make the fit differ between CPUs. On z-scores this is far below any real
# difference and far above float rounding (float32 grid weights: ~1e-7 relative).
TIE_TOLERANCE = 1e-5


def grid_gains(z: F32, target: int, available: npt.NDArray[np.bool_], grid: F32, k: int) -> F32:
    """(G,) NDCG@k of one case under every grid weight vector. Ties count against the target
    (a signal that is flat for this user must not look perfect):

        rank_g = #{ o != target available : w_g . (z_o - z_target) >= -TIE_TOLERANCE }

    Exact and cheap: an item at or above the target (less the tolerance) in every component is
    ranked before it for any weights on the simplex, one below it by more than the tolerance in
    every component never is; only the rest need the (G, C) x (C, m) product, done in float64.
    z: (C, N) standardised; available: (N,)."""
    zt = z[:, target : target + 1].astype(np.float64)  # (C, 1)
    others = z[:, available & (np.arange(z.shape[1]) != target)] - zt  # (C, n) relative to the target
    above = (others >= -TIE_TOLERANCE).all(axis=0)  # (n,)
    base = int(above.sum())
    if base >= k:
        return np.zeros(grid.shape[0], np.float32)
    mixed = others[:, ~above & ~(others < -TIE_TOLERANCE).all(axis=0)]  # (C, m)
    ranks = base + (grid.astype(np.float64) @ mixed >= -TIE_TOLERANCE).sum(axis=1)  # (G,)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).astype(np.float32)


def fit_weights(gains: npt.NDArray[np.float64], grid: F32) -> tuple[BlendWeights, float]:
    """The grid point with the best mean NDCG@k over cases whose `grid_gains` are the rows of
    `gains` (V, G), and that NDCG. Ties go to the earlier grid point: the fit is deterministic."""
    total = gains.sum(axis=0)  # (G,)
    best = int(np.argmax(total))
    return BlendWeights.from_array(grid[best]), float(total[best] / max(gains.shape[0], 1))


def fit_policy(gains: npt.NDArray[np.float64], history_lengths: npt.ArrayLike, grid: F32,
               prior: BlendPolicy | None = None) -> tuple[BlendPolicy, list[dict[str, object]]]:
    """One fit per history bucket of `prior` (a bucket with too few cases keeps the prior's
    weights), and a report per bucket: cases and validation NDCG@k (of the weights kept)."""
    prior = prior or BlendPolicy()
    buckets = prior.bucket(history_lengths)  # (V,)
    index = {tuple(g.round(6).tolist()): n for n, g in enumerate(grid)}
    weights: list[BlendWeights] = []
    report: list[dict[str, object]] = []
    ndcg: float | None
    for b in range(len(prior.bounds) + 1):
        at = np.flatnonzero(buckets == b)
        if at.size >= MIN_CASES_PER_BUCKET:
            w, ndcg = fit_weights(gains[at], grid)
        else:
            w = prior.weights[b]
            g = index.get(tuple(w.as_array().round(6).tolist()))
            ndcg = float(gains[at, g].mean()) if g is not None and at.size else None
        weights.append(w)
        report.append({"bucket": b, "cases": int(at.size),
                       "validation_ndcg": None if ndcg is None else round(ndcg, 4),
                       "weights": w.to_json()})
    return BlendPolicy(prior.bounds, tuple(weights)), report


def best_first(scores: F32, candidates: npt.NDArray[np.intp], k: int) -> npt.NDArray[np.intp]:
    """The k best of `candidates` by score, best first, ties by index."""
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if candidates.size > k:
        part = np.argpartition(-scores[candidates], k - 1)[:k]
        cut = scores[candidates[part]].min()
        candidates = candidates[scores[candidates] >= cut]  # every tie at the cut competes
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order][:k]


def new_item_picks(scores: F32, z_text: F32, new: npt.NDArray[np.bool_], top: npt.NDArray[np.intp],
                   slots: int, min_z: float) -> npt.NDArray[np.intp]:
    """The `slots` best new items of one user's (N,) scores (-inf: unavailable), best first,
    among those on the user's topic (text z-score >= min_z) and not already in `top`: served
    beside the top-k, so an app can give a brand-new item an exploration slot without the top-k
    losing its best items."""
    eligible = new & (z_text >= min_z) & np.isfinite(scores)  # (N,)
    eligible[top] = False
    candidates = np.flatnonzero(eligible)
    return best_first(scores, candidates, min(slots, candidates.size))


def best_first_rows(scores: F32, k: int) -> npt.NDArray[np.intp]:
    """(B, k) each row's k best finite entries of (B, N) `scores`, best first, ties by index
    (`best_first` row by row), -1 padding where a row has fewer. One partition and one sort for
    all rows; a row with a tie at its cut, or fewer than k finite entries, goes through
    `best_first`. The partition puts the (kk+1)-th best entry at column kk, every better one
    before it: the cut is tied exactly when that entry equals the worst of the kk before it, so
    no pass over the (B, N) scores checks for ties."""
    b_n, n = scores.shape
    kk = min(k, n)
    if kk <= 0 or b_n == 0:
        return np.full((b_n, max(k, 0)), -1, np.intp)
    if n == kk:
        part = np.tile(np.arange(n), (b_n, 1))  # (B, N)
        below = np.full(b_n, -np.inf, np.float32)  # (B,) nothing outside the top
    else:
        split = np.argpartition(-scores, kk, axis=1)[:, : kk + 1]  # (B, kk + 1) the best kk, then the next
        part = split[:, :kk]  # (B, kk)
        below = np.take_along_axis(scores, split[:, kk:], axis=1)[:, 0]  # (B,) the (kk+1)-th best
    values = np.take_along_axis(scores, part, axis=1)  # (B, kk)
    cut = values.min(axis=1)  # (B,)
    exact = np.isfinite(cut) & (below < cut)  # (B,) no tie at the cut
    order = np.lexsort((part, -values), axis=1)  # (B, kk) by score, then index
    out = np.full((b_n, k), -1, np.intp)
    out[:, :kk] = np.take_along_axis(part, order, axis=1)
    for b in np.flatnonzero(~exact).tolist():
        row = scores[b]
        available = np.flatnonzero(np.isfinite(row))
        top = best_first(row, available, min(k, available.size))
        out[b] = -1
        out[b, : top.size] = top
    return out


def new_item_picks_rows(scores: F32, z_text: F32, new: npt.NDArray[np.bool_], top: npt.NDArray[np.intp],
                        slots: int, min_z: float) -> npt.NDArray[np.intp]:
    """(B, slots) `new_item_picks` for every row of (B, N) `scores` and `z_text` at once, -1
    padding; top: (B, k) the rows' top-k (-1 padding)."""
    b_n = scores.shape[0]
    if slots <= 0:
        return np.zeros((b_n, 0), np.intp)
    eligible = new[None, :] & (z_text >= min_z) & np.isfinite(scores)  # (B, N)
    users = np.repeat(np.arange(b_n), top.shape[1])  # (B k,)
    listed = top.ravel()
    eligible[users[listed >= 0], listed[listed >= 0]] = False
    out = np.full((b_n, slots), -1, np.intp)
    masked = np.where(eligible, scores, -np.inf)  # (B, N)
    for s in range(slots):
        best = masked.argmax(axis=1)  # (B,) the first of equal maxima: ties by index
        found = np.isfinite(masked[np.arange(b_n), best])  # (B,)
        out[found, s] = best[found]
        masked[np.flatnonzero(found), best[found]] = -np.inf
    return out
