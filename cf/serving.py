"""What a worker serves: each user's hybrid top-k from their state and the shared signals.

The same blend `interests eval` measures (`cf.hybrid`): text interest (centred cosine of the
user's decayed vector), the factor model's score (user folded in from their latest items),
co-occurrence with their recent items and log decayed popularity, standardised per user and
mixed with the weights of their history bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cf.catalog import ItemCatalog
from cf.factors import FactorModel, fold_in
from cf.hybrid import TEXT, BlendPolicy, best_first, blend, new_item_picks, stack
from cf.neighbours import NeighbourIndex
from cf.scoring import Scored, cosine_scores
from cf.state import UserState

F32 = npt.NDArray[np.float32]
SERVING_VERSION = "hybrid-zblend/1"


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

    def components(self, states: list[UserState]) -> dict[str, F32]:
        """Each signal's (B, N) scores."""
        n = len(self.catalog)
        vectors = np.stack([s.vector for s in states]).astype(np.float32)  # (B, D)
        sums = np.array([s.weight_sum for s in states], dtype=np.float32)  # (B,)
        out = {"text": cosine_scores(self.catalog, vectors, sums)}  # (B, N)
        factors = self.factors()
        if factors is not None and self.model is not None:
            rows = [[r for r in (self.catalog.row_of(i) for i in s.history[-self.fold_in_items :])
                     if r is not None] for s in states]
            users = fold_in(factors, self.model.gram, rows, self.model.alpha)  # (B, F)
            out["cf"] = users @ factors.T  # (B, N)
        else:
            out["cf"] = np.zeros((len(states), n), np.float32)
        out["cooc"] = self.neighbours.cooc_scores(self.catalog, [s.history for s in states])
        popularity = self.neighbours.popularity(self.catalog, [s.updated_ms for s in states])
        out["popularity"] = np.log1p(popularity).astype(np.float32)  # (B, N)
        return out

    def available(self, states: list[UserState]) -> npt.NDArray[np.bool_]:
        """(B, N) items each user has not consumed."""
        mask = np.ones((len(states), len(self.catalog)), dtype=bool)
        for b, s in enumerate(states):
            rows = [r for r in (self.catalog.row_of(i) for i in s.history) if r is not None]
            mask[b, rows] = False
        return mask

    def scores(self, states: list[UserState]) -> tuple[F32, F32]:
        """(B, N) hybrid scores (consumed items -inf) and the (C, B, N) standardised signals."""
        available = self.available(states)
        z = stack(self.components(states), available)  # (C, B, N)
        return blend(z, self.policy, [len(s.history) for s in states], available), z

    def top_k(self, states: Mapping[str, UserState], k: int) -> dict[str, Ranked]:
        """Each user's k best items, best first, ties by catalog row, and beside them up to
        `new_item_slots` new items that match the user's text interest (for an app's
        exploration slot). A user with no events yet gets empty lists."""
        users = [u for u in states if states[u].events > 0]
        out = {u: Ranked([], []) for u in states}
        if not users or len(self.catalog) == 0 or k <= 0:
            return out
        scores, z = self.scores([states[u] for u in users])  # (B, N), (C, B, N)
        new = self.neighbours.arrays(self.catalog)[0] < self.new_item_max  # (N,)
        ids = self.catalog.ids
        for b, user in enumerate(users):
            row = scores[b]
            available = np.flatnonzero(np.isfinite(row))
            top = best_first(row, available, min(k, available.size))
            picks = new_item_picks(row, z[TEXT, b], new, top, self.new_item_slots, self.new_item_min_z)
            out[user] = Ranked([Scored(ids[int(i)], float(row[i])) for i in top],
                               [Scored(ids[int(i)], float(row[i])) for i in picks])
        return out


@dataclass(frozen=True)
class Ranked:
    items: list[Scored]  # the top-k, best first
    new_items: list[Scored]  # new items for an exploration slot, not among `items`
