"""What a worker serves: each user's hybrid top-k from their state and the shared signals.

The same blend `interests eval` measures (`cf.hybrid`): text interest (centred cosine of each of
the user's interests, `cf.interests`), the factor model's score (user folded in from their latest
items), co-occurrence with their recent items and log decayed popularity, standardised per user
and mixed with the weights of their history bucket; an item is kept by the interest that ranks
it best (`blend_interests`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cf.catalog import ItemCatalog
from cf.catalog_index import CatalogIndex
from cf.explain import EXPLAIN_WINDOW, Because, speaking_items
from cf.factors import FactorModel, fold_in
from cf.hybrid import (
    COMPONENTS,
    TEXT,
    BlendPolicy,
    best_first,
    blend_interests,
    new_item_picks,
    stack,
    standardise,
)
from cf.interests import InterestConfig, interest_rows, interest_text
from cf.neighbours import NeighbourIndex
from cf.scoring import Scored, cosine_scores, normalise_rows
from cf.state import UserState

F32 = npt.NDArray[np.float32]
Cols = npt.NDArray[np.intp] | None  # (M,) catalog rows to score; None: every row
SERVING_VERSION = "hybrid-zblend-interests/2"


@dataclass
class HybridScorer:
    catalog: ItemCatalog
    neighbours: NeighbourIndex
    model: FactorModel | None = None
    policy: BlendPolicy = field(default_factory=BlendPolicy)
    fold_in_items: int = 20  # the factor model sees a user's latest items only
    new_item_slots: int = 1  # places in each list kept for new items
    new_item_max: int = 1  # an item with fewer interactions than this is new
    new_item_min_z: float = 2.0  # ... and takes a slot only this many std above the user's mean text score
    index: CatalogIndex | None = None  # above its `min_items`, users are ranked over candidates
    candidates_text: int = 200  # text candidates per user from the index
    candidates_popular: int = 100  # most interacted items, candidates for every user
    index_chunk: int = 64  # users ranked together over their union of candidates
    interests: InterestConfig = field(default_factory=InterestConfig)  # its share_beta
    _factors: F32 | None = None  # (N, F) catalog-aligned, for `_factors_version`
    _factors_version: int = -1

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else "no-cf"

    def factors(self) -> F32 | None:
        """(N, F) the model's factors in catalog row order; text-projected for unseen items."""
        if self.model is None or len(self.catalog) == 0:
            return None
        if self._factors_version != self.catalog.version:
            self._factors = self.model.aligned(self.catalog.ids, self.catalog.matrix)
            self._factors_version = self.catalog.version
        return self._factors

    def components(self, states: list[UserState], cols: Cols = None, text: bool = True) -> dict[str, F32]:
        """Each signal's (B, N) scores; (B, M) of the catalog rows `cols` when given. text: the
        single vector's (the served blend takes each interest's instead, `scores`)."""
        n = len(self.catalog) if cols is None else cols.size
        out: dict[str, F32] = {}
        if text:
            vectors = np.stack([s.vector for s in states]).astype(np.float32)  # (B, D)
            sums = np.array([s.weight_sum for s in states], dtype=np.float32)  # (B,)
            out["text"] = cosine_scores(self.catalog, vectors, sums, cols)  # (B, N)
        factors = self.factors()
        if factors is not None and self.model is not None:
            rows = [[r for r in (self.catalog.row_of(i) for i in s.history[-self.fold_in_items :])
                     if r is not None] for s in states]
            users = fold_in(factors, self.model.gram, rows, self.model.alpha)  # (B, F)
            out["cf"] = users @ (factors if cols is None else factors[cols]).T  # (B, N)
        else:
            out["cf"] = np.zeros((len(states), n), np.float32)
        out["cooc"] = self.neighbours.cooc_scores(self.catalog, [s.history for s in states], cols)
        popularity = self.neighbours.popularity(self.catalog, [s.updated_ms for s in states], cols)
        out["popularity"] = np.log1p(popularity).astype(np.float32)  # (B, N)
        return out

    def available(self, states: list[UserState], cols: Cols = None) -> npt.NDArray[np.bool_]:
        """(B, N) items each user has not consumed ((B, M) of `cols`)."""
        n = len(self.catalog)
        position = np.arange(n) if cols is None else np.full(n, -1, np.intp)  # (N,) row -> column
        if cols is not None:
            position[cols] = np.arange(cols.size)
        mask = np.ones((len(states), n if cols is None else cols.size), dtype=bool)
        for b, s in enumerate(states):
            at = position[self.catalog.rows_of(s.history)]  # (H,) columns of the consumed items
            mask[b, at[at >= 0]] = False
        return mask

    def scores(self, states: list[UserState], cols: Cols = None) -> tuple[F32, F32, npt.NDArray[np.intp]]:
        """(B, N) hybrid scores (consumed items -inf), the (C, B, N) standardised signals (text:
        that of the interest each item came from) and the (B, N) index of that interest in the
        user's state; over the catalog rows `cols` ((B, M), ...) when given."""
        available = self.available(states, cols)
        z = stack(self.components(states, cols, text=False), available)  # (C, B, N), text row 0
        each = interest_text(self.catalog, states, self.interests.share_beta, cols)
        z_text = standardise(each.scores, available)  # (K, B, N)
        scores, chosen, z = blend_interests(z, z_text, each.log_share, self.policy,
                                            [len(s.history) for s in states], available)
        interest = each.slot[chosen, np.arange(len(states))[:, None]]  # (B, N)
        return scores, z, interest

    def candidates(self, states: list[UserState]) -> npt.NDArray[np.intp]:
        """(M,) catalog rows worth scoring for these users, from the approximate index: the
        `candidates_text` nearest items by text of each of a user's interests, the co-occurrence
        neighbours of their 5 newest items, and the `candidates_popular` most interacted items;
        sorted."""
        assert self.index is not None
        rows = interest_rows(states, self.interests.share_beta)
        vectors = np.stack([r.vector for r in rows]).astype(np.float32)  # (R, D)
        sums = np.array([r.weight_sum for r in rows], dtype=np.float32)  # (R,)
        mean = self.catalog.mean  # (D,)
        queries = normalise_rows(vectors - sums[:, None] * mean[None, :])  # (R, D) centred u'
        found = self.index.search(queries, self.candidates_text).ravel()  # (R k,)
        parts = [found[found >= 0]]
        parts += [self.neighbours.neighbours_of(self.catalog, s.history, 5) for s in states]
        counts = self.neighbours.arrays(self.catalog)[0]  # (N,)
        top = min(self.candidates_popular, counts.size)
        if top:
            parts.append(np.argpartition(-counts, top - 1)[:top])
        return np.unique(np.concatenate(parts).astype(np.intp))

    def top_k(self, states: Mapping[str, UserState], k: int) -> dict[str, Ranked]:
        """Each user's k best items, best first, ties by catalog row, and beside them up to
        `new_item_slots` new items that match the user's text interest (for an app's
        exploration slot). A user with no events yet gets empty lists."""
        users = [u for u in states if states[u].events > 0]
        out = {u: Ranked([], [], [], []) for u in states}
        if not users or len(self.catalog) == 0 or k <= 0:
            return out
        indexed = self.index is not None and self.index.active
        chunk = self.index_chunk if indexed else len(users)
        is_new = self.neighbours.arrays(self.catalog)[0] < self.new_item_max  # (N,)
        for start in range(0, len(users), chunk):
            group = users[start : start + chunk]
            group_states = [states[u] for u in group]
            cols = self.candidates(group_states) if indexed else None
            scores, z, interest = self.scores(group_states, cols)  # (B, N), (C, B, N), (B, N); N: M with cols
            ids = self.catalog.ids if cols is None else [self.catalog.ids[int(c)] for c in cols]
            new = is_new if cols is None else is_new[cols]  # (N,) or (M,)
            chosen = []
            for b in range(len(group)):
                row = scores[b]
                available = np.flatnonzero(np.isfinite(row))
                top = best_first(row, available, min(k, available.size))
                picks = new_item_picks(row, z[TEXT, b], new, top, self.new_item_slots, self.new_item_min_z)
                chosen.append((top, picks))
            reasons = self._because(group_states, z, interest, chosen, cols)
            for b, (user, (top, picks)) in enumerate(zip(group, chosen, strict=True)):
                row = scores[b]
                out[user] = Ranked([Scored(ids[int(i)], float(row[i])) for i in top],
                                   [Scored(ids[int(i)], float(row[i])) for i in picks],
                                   reasons[b][: top.size], reasons[b][top.size :])
        return out

    def _because(self, states: list[UserState], z: F32, interest: npt.NDArray[np.intp],
                 chosen: Sequence[tuple[npt.NDArray[np.intp], ...]], cols: Cols) -> list[list[Because]]:
        """Each listed item's explanation (`cf.explain`), per user: top then picks; for B users at
        once. z: (C, B, N) or (C, B, M); interest: (B, N) or (B, M)."""
        b_n, window = len(states), EXPLAIN_WINDOW
        k = max((t.size + p.size for t, p in chosen), default=0)
        at = np.zeros((b_n, k), np.intp)  # (B, K) columns of z, padded with column 0
        history_rows = np.zeros((b_n, window), np.intp)  # (B, H) catalog rows, newest last
        known = np.zeros((b_n, window), bool)  # (B, H)
        history_ids = [[""] * window for _ in range(b_n)]
        for b, ((top, picks), state) in enumerate(zip(chosen, states, strict=True)):
            listed = np.concatenate([top, picks])
            at[b, : listed.size] = listed
            history = [(h, r) for h in state.history[-window:] if (r := self.catalog.row_of(h)) is not None]
            start = window - len(history)
            for n, (h, r) in enumerate(history, start=start):
                history_rows[b, n], known[b, n], history_ids[b][n] = r, True, h
        matrix = self.catalog.matrix
        rows = at if cols is None else cols[at]  # (B, K) catalog rows
        history_vectors = matrix[history_rows] * known[:, :, None]  # (B, H, D), zero rows unknown
        speaking = speaking_items(matrix[rows], history_vectors, history_ids,
                                  self.neighbours.config.recency_decay)
        signals = z[:, np.arange(b_n)[:, None], at].transpose(1, 2, 0).tolist()  # (B, K, C)
        from_interest = interest[np.arange(b_n)[:, None], at].tolist()  # (B, K)
        return [[Because(k, said, dict(zip(COMPONENTS, row, strict=True)))
                 for said, row, k in zip(speaking[b][: t.size + p.size], signals[b], from_interest[b],
                                         strict=False)]
                for b, (t, p) in enumerate(chosen)]


@dataclass(frozen=True)
class Ranked:
    items: list[Scored]  # the top-k, best first
    new_items: list[Scored]  # new items for an exploration slot, not among `items`
    because: list[Because]  # why each of `items` is there
    new_because: list[Because]  # why each of `new_items` is there
