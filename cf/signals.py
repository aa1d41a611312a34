"""Every signal the hybrid blends, kept in process and fed one interaction at a time: what the
worker's tables hold, for a replay that needs no broker (`interests eval`, `interests train-cf`).

Items are catalog rows 0..N-1; users are ids. `components(user, now)` reads the signals before
the event, `update(...)` folds the event in: the order a stream sees them. A user's state is the
worker's (`cf.interests.merge_event`): one decayed vector and the interests that partition it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from cf.catalog import ItemCatalog
from cf.cooccurrence import ItemCooccurrence, SequentialCooccurrence
from cf.decay import DecayConfig
from cf.factors import FactorModel, fold_in
from cf.interests import InterestConfig, interest_text, merge_event
from cf.neighbours import CoocConfig
from cf.popularity import DecayedPopularity, Popularity
from cf.scoring import cosine_scores
from cf.sequence import SequenceModel
from cf.state import UserState
from cf.weights import EventWeights

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SequenceQuery:
    """What the sequential model reads for one user at one moment: scored later, with others."""

    model: SequenceModel
    items: F32  # (N, d) the model's item embeddings, catalog order
    window: npt.NDArray[np.intp]  # (L,) the user's latest rows, oldest first


def sequence_scores(queries: Sequence[SequenceQuery]) -> list[F32]:
    """Each query's (N,) scores, one batched forward pass per model among them."""
    out: list[F32] = [np.zeros(0, np.float32)] * len(queries)
    groups: dict[int, list[int]] = defaultdict(list)
    for n, q in enumerate(queries):
        groups[id(q.model)].append(n)
    for at in groups.values():
        first = queries[at[0]]
        scores = first.model.scores(first.items, [queries[n].window for n in at])  # (b, N)
        for n, row in zip(at, scores, strict=True):
            out[n] = row
    return out


class Signals:
    def __init__(self, item_ids: list[str], vectors: F32, weights: EventWeights, decay: DecayConfig,
                 space: str, fold_in_items: int = 20, cooc: CoocConfig | None = None,
                 interests: InterestConfig | None = None) -> None:
        n = len(item_ids)
        self.item_ids = item_ids
        self.vectors = vectors  # (N, D) float32 unit rows, catalog order
        self.catalog = ItemCatalog(vectors.shape[1], capacity=max(n, 1))
        for item_id, v in zip(item_ids, vectors, strict=True):
            self.catalog.upsert(item_id, v)
        self.weights, self.decay, self.space = weights, decay, space
        self.fold_in_items = fold_in_items  # the factor model sees a user's latest items only
        self.popularity = Popularity(n)
        self.decayed = DecayedPopularity(n, half_life_s=decay.half_life_s)
        self.itemknn = ItemCooccurrence(n)
        cooc = cooc or CoocConfig()  # the worker's window and decays (INTERESTS_COOC_*)
        self.cooc = SequentialCooccurrence(n, cooc.window, cooc.pair_decay, cooc.recency_decay)
        self.states: dict[str, UserState] = {}
        # the worker's K and join threshold (INTERESTS_MAX_INTERESTS, ...), the interests' decay
        self.interest_config = replace(interests or InterestConfig(), half_life_s=decay.half_life_s)
        self.histories: dict[str, list[int]] = defaultdict(list)  # user -> consumed rows, oldest first
        self.model: FactorModel | None = None
        self._factors: F32 | None = None  # (N, F) catalog-aligned
        self.sequence: SequenceModel | None = None
        self._sequence_items: F32 | None = None  # (N, d) catalog-aligned e_i

    def use_model(self, model: FactorModel | None) -> None:
        self.model = model
        self._factors = None if model is None else model.aligned(self.item_ids, self.vectors)

    def use_sequence(self, model: SequenceModel | None) -> None:
        self.sequence = model
        self._sequence_items = None if model is None else model.aligned(self.item_ids, self.vectors)

    def sequence_query(self, user: str) -> SequenceQuery | None:
        """The sequential model's input for `user` now; None without a model."""
        if self.sequence is None or self._sequence_items is None:
            return None
        latest = np.asarray(self.histories.get(user, [])[-self.sequence.max_len :], np.intp)  # (L,)
        return SequenceQuery(self.sequence, self._sequence_items, latest)

    def components(self, user: str, now_ms: int, sequence: bool = True) -> dict[str, F32]:
        """Each signal's (N,) scores for `user` at `now_ms`, before their next event; beside them
        `text_each` (K, N), each interest's text signal, and `log_share` (K,) (`interest_text`,
        padded to K = max_interests rows). sequence=False: without `seq` (scored in batches from
        `sequence_query`)."""
        state = self.states.get(user)
        n = len(self.item_ids)
        text = np.zeros(n, np.float32)
        each = interest_text(self.catalog, [state or UserState.empty(self.vectors.shape[1])],
                             self.interest_config.share_beta, pad_to=self.interest_config.max_interests)
        if state is not None:
            text = cosine_scores(self.catalog, state.vector[None, :],
                                 np.array([state.weight_sum], np.float32))[0]  # (N,)
        cf = np.zeros(n, np.float32)
        if self._factors is not None and self.model is not None:
            recent = self.histories[user][-self.fold_in_items :]
            x = fold_in(self._factors, self.model.gram, [recent], self.model.alpha)  # (1, F)
            cf = (self._factors @ x[0]).astype(np.float32)  # (N,)
        query = self.sequence_query(user) if sequence else None
        seq = np.zeros(n, np.float32) if query is None else sequence_scores([query])[0]  # (N,)
        decayed = self.decayed.scores(user, now_ms)  # (N,)
        return {
            "popularity": self.popularity.scores(user, now_ms),
            "decayed_popularity": decayed,
            "itemknn": self.itemknn.scores(user, now_ms),
            "cooc": self.cooc.scores(user, now_ms),
            "text": text,
            "cf": cf,
            **({"seq": seq} if sequence else {}),
            "text_each": each.scores[:, 0, :],
            "log_share": each.log_share[:, 0],
        }

    def update(self, user: str, item: int, ts_ms: int, rating: float | None, kind: str) -> None:
        state = self.states.get(user) or UserState.empty(self.vectors.shape[1], self.space)
        w = self.weights.weight(kind, rating)
        self.states[user] = merge_event(state, self.vectors[item], w, ts_ms, self.decay, self.interest_config,
                                        item_id=self.item_ids[item], vector_of=self.catalog.vector)
        self.popularity.update(user, item, ts_ms, rating)
        self.decayed.update(user, item, ts_ms, rating)
        self.itemknn.update(user, item, ts_ms, rating)
        self.cooc.update(user, item, ts_ms, rating)
        self.histories[user].append(item)


def hybrid_inputs(components: dict[str, F32]) -> dict[str, F32]:
    """The hybrid's inputs from the signals: popularity enters as log(1 + decayed count),
    so one blockbuster does not flatten everyone else's z-scores; text is the single vector's."""
    return {
        "text": components["text"],
        "cf": components["cf"],
        "cooc": components["cooc"],
        "popularity": np.log1p(components["decayed_popularity"]).astype(np.float32),
        "seq": components["seq"],
    }
