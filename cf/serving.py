"""What a worker serves: each user's hybrid top-k from their state and the shared signals.

The same blend `interests eval` measures (`cf.hybrid`): text interest (centred cosine of each of
the user's interests, `cf.interests`), the factor model's score (user folded in from their latest
items), co-occurrence with their recent items and log decayed popularity, standardised per user
and mixed with the weights of their history bucket; an item is kept by the interest that ranks
it best (`blend_interests`, which the evaluator runs; `blend_rows` over unpadded interest rows,
the same scores; and what `top_k` serves, each user's lists in one compiled pass,
`cf.blend_kernel`, the same lists).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cf.blend_kernel import blend_lists
from cf.blend_kernel import warm_up as warm_up_blend
from cf.catalog import ItemCatalog
from cf.catalog_index import CatalogIndex
from cf.explain import EXPLAIN_WINDOW, Because, speaking_rows
from cf.explain import warm_up as warm_up_explain
from cf.factors import FactorModel, fold_in
from cf.hybrid import (
    COMPONENTS,
    TEXT,
    BlendPolicy,
    RowBlend,
    blend_rows,
    stack,
    standardise,
)
from cf.interests import InterestConfig, TextRows, interest_rows, text_rows
from cf.neighbours import NeighbourIndex
from cf.pair_arena import warm_up as warm_up_pairs
from cf.scoring import Scored, cosine_scores, normalise_rows
from cf.searches import afters
from cf.sequence import SequenceModel
from cf.state import Search, UserState

F32 = npt.NDArray[np.float32]
Cols = npt.NDArray[np.intp] | None  # (M,) catalog rows to score; None: every row
Ints = npt.NDArray[np.intp]
Rows = Sequence[Ints]  # per user, (H,) catalog rows of their history, -1: not in it
SERVING_VERSION = "hybrid-zblend-seq/4"  # five signals; searches enter the sequence


def compile_kernels() -> None:
    """The compiled parts of a list, compiled (or read from numba's cache) before the first batch."""
    warm_up_blend()
    warm_up_pairs()
    warm_up_explain()


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
    # most users ranked in one pass (over their union of candidates when the index is on): a
    # pass's arrays take about 0.14 MB per user over 1,682 items, so a batch of any size works in
    # the memory of this many users (a process keeps its peak: a backlog's batch of 900 users held
    # 128 MB in one pass), and 64-128 users a pass is also the cheapest per user (`interests bench
    # batch`, its users per call); a larger batch is cut into equal passes
    users_per_pass: int = 128
    interests: InterestConfig = field(default_factory=InterestConfig)  # its share_beta
    sequence: SequenceModel | None = None  # the `seq` signal; none: it stays 0
    candidates_seq: int = 100  # sequence-model candidates per user, above the index's `min_items`
    _factors: F32 | None = None  # (N, F) catalog-aligned, for `_factors_version`
    _factors_version: int = -1
    _seq_items: F32 | None = None  # (N, d) catalog-aligned e_i, for `_seq_version`
    _seq_version: int = -1

    @property
    def version(self) -> str:
        cf = self.model.version if self.model is not None else "no-cf"
        return cf if self.sequence is None else f"{cf}+{self.sequence.version}"

    def factors(self) -> F32 | None:
        """(N, F) the model's factors in catalog row order; text-projected for unseen items."""
        if self.model is None or len(self.catalog) == 0:
            return None
        if self._factors_version != self.catalog.version:
            self._factors = self.model.aligned(self.catalog.ids, self.catalog.matrix)
            self._factors_version = self.catalog.version
        return self._factors

    def sequence_items(self) -> F32 | None:
        """(N, d) the sequential model's item embeddings in catalog row order (`SequenceModel.aligned`)."""
        if self.sequence is None or len(self.catalog) == 0:
            return None
        if self._seq_version != self.catalog.version:
            self._seq_items = self.sequence.aligned(self.catalog.ids, self.catalog.matrix)
            self._seq_version = self.catalog.version
        return self._seq_items

    def sequence_vectors(self, history: Rows, searches: Sequence[tuple[Search, ...]] = ()) -> F32 | None:
        """(B, d) each user's sequence representation h_u from their `history_rows` and their
        states' `searches` (none: items only), each search in its place as P v_text; None
        without the model."""
        items = self.sequence_items()
        if items is None or self.sequence is None:
            return None
        after = afters(searches)
        queries = None
        if after is not None:
            text = np.array([s.vector for mine in searches for s in mine], np.float32)  # (S, D)
            queries = self.sequence.project(text)  # (S, d) P v_text
        return self.sequence.represent(items, self.sequence.window(history, after), queries)

    def history_rows(self, states: list[UserState]) -> list[npt.NDArray[np.intp]]:
        """Per user, the (H,) catalog rows of their history, oldest first, -1 for an item not in
        the catalog: every user's ids looked up in one pass."""
        lengths = [len(s.history) for s in states]
        flat = self.catalog.rows_or_missing(itertools.chain.from_iterable(s.history for s in states),
                                            sum(lengths))  # (sum H,)
        ends = list(itertools.accumulate(lengths))
        return [flat[end - length : end] for end, length in zip(ends, lengths, strict=True)]  # views

    def components(self, states: list[UserState], cols: Cols = None, text: bool = True,
                   history: Rows | None = None, seq: F32 | None = None) -> dict[str, F32]:
        """Each signal's (B, N) scores; (B, M) of the catalog rows `cols` when given. text: the
        single vector's (the served blend takes each interest's instead, `scores`); cf: none
        without a factor model. history: the users' `history_rows`, when already looked up; seq:
        their `sequence_vectors`, likewise."""
        history = self.history_rows(states) if history is None else history
        out: dict[str, F32] = {}
        if text:
            vectors = np.stack([s.vector for s in states]).astype(np.float32)  # (B, D)
            sums = np.array([s.weight_sum for s in states], dtype=np.float32)  # (B,)
            out["text"] = cosine_scores(self.catalog, vectors, sums, cols)  # (B, N)
        factors = self.factors()
        if factors is not None and self.model is not None:  # without a model the signal is absent (0)
            rows = [r[-self.fold_in_items :] for r in history]
            users = fold_in(factors, self.model.gram, [r[r >= 0] for r in rows], self.model.alpha)  # (B, F)
            out["cf"] = users @ (factors if cols is None else factors[cols]).T  # (B, N)
        out["cooc"] = self.neighbours.cooc_scores(self.catalog, [s.history for s in states], cols,
                                                  recent_rows=history)
        popularity = self.neighbours.popularity(self.catalog, [s.updated_ms for s in states], cols)
        out["popularity"] = np.log1p(popularity, out=popularity)  # (B, N) float32, in place
        items = self.sequence_items()
        h = self.sequence_vectors(history, [s.searches for s in states]) if seq is None else seq  # (B, d)
        if items is not None and h is not None:
            out["seq"] = h @ (items if cols is None else items[cols]).T  # (B, N)
        return out

    def available(self, states: list[UserState], cols: Cols = None,
                  history: Rows | None = None) -> npt.NDArray[np.bool_]:
        """(B, N) items each user has not consumed ((B, M) of `cols`)."""
        n = len(self.catalog)
        history = self.history_rows(states) if history is None else history
        mask = np.ones((len(states), n if cols is None else cols.size), dtype=bool)  # (B, N)
        if not history:
            return mask
        rows = np.concatenate(history)  # (sum H,)
        users = np.repeat(np.arange(len(states)), [h.size for h in history])  # (sum H,)
        if cols is not None:
            position = np.full(n, -1, np.intp)  # (N,) row -> column
            position[cols] = np.arange(cols.size)
            rows = np.where(rows >= 0, position[rows], -1)
        known = rows >= 0
        mask[users[known], rows[known]] = False
        return mask

    def signals(self, states: list[UserState], cols: Cols = None, history: Rows | None = None,
                seq: F32 | None = None) -> tuple[npt.NDArray[np.bool_], dict[str, F32], TextRows]:
        """What a blend is made of: the (B, N) items each user may still get, each signal's raw
        (B, N) scores but text's (`components`), and each interest row's (R, N) text scores; over
        the catalog rows `cols` ((B, M), ...) when given."""
        history = self.history_rows(states) if history is None else history
        available = self.available(states, cols, history)  # (B, N)
        raw = self.components(states, cols, text=False, history=history, seq=seq)  # each (B, N)
        return available, raw, text_rows(self.catalog, states, self.interests.share_beta, cols)

    def blended(self, states: list[UserState], cols: Cols = None,
                history: Rows | None = None) -> tuple[RowBlend, F32, F32, TextRows]:
        """The blend in numpy arrays (`blend_rows`; `top_k` serves the same lists compiled), the
        (C, B, N) standardised signals (text row 0), each interest row's (R, N) standardised text
        and those rows; over the catalog rows `cols` ((B, M), ...) when given."""
        available, raw, rows = self.signals(states, cols, history)
        z = stack(raw, available)  # (C, B, N)
        z_text = standardise(rows.scores, available[rows.user])  # (R, N)
        lengths = [len(s.history) for s in states]
        blend = blend_rows(z, z_text, rows.user, rows.log_share, self.policy, lengths, available)
        return blend, z, z_text, rows

    def scores(self, states: list[UserState], cols: Cols = None,
               history: Rows | None = None) -> tuple[F32, F32, npt.NDArray[np.intp]]:
        """(B, N) hybrid scores (consumed items -inf), the (C, B, N) standardised signals (text:
        that of the interest each item came from) and the (B, N) index of that interest in the
        user's state; over the catalog rows `cols` ((B, M), ...) when given."""
        blend, z, z_text, rows = self.blended(states, cols, history)
        b_n, n = blend.scores.shape
        every = np.broadcast_to(np.arange(n), (b_n, n))  # (B, N)
        chosen = blend.chosen(every)  # (B, N) rows
        z[TEXT] = z_text[chosen, every]
        return blend.scores, z, rows.slot[chosen]

    def candidates(self, states: list[UserState], history: Rows | None = None,
                   seq: F32 | None = None) -> npt.NDArray[np.intp]:
        """(M,) catalog rows worth scoring for these users, from the approximate index: the
        `candidates_text` nearest items by text of each of a user's interests, the co-occurrence
        neighbours of their 5 newest items, the `candidates_seq` best by the sequential model
        (exact: its d-dimensional scores are cheap) and the `candidates_popular` most interacted
        items; sorted."""
        assert self.index is not None
        rows = interest_rows(states, self.interests.share_beta)
        vectors = np.stack([r.vector for r in rows]).astype(np.float32)  # (R, D)
        sums = np.array([r.weight_sum for r in rows], dtype=np.float32)  # (R,)
        mean = self.catalog.mean  # (D,)
        queries = normalise_rows(vectors - sums[:, None] * mean[None, :])  # (R, D) centred u'
        found = self.index.search(queries, self.candidates_text).ravel()  # (R k,)
        parts = [found[found >= 0]]
        parts += [self.neighbours.neighbours_of(self.catalog, s.history, 5) for s in states]
        items = self.sequence_items()
        if seq is None and items is not None:
            seq = self.sequence_vectors(self.history_rows(states) if history is None else history,
                                        [s.searches for s in states])
        if items is not None and seq is not None and self.candidates_seq > 0:
            scores = seq @ items.T  # (B, N)
            best = min(self.candidates_seq, scores.shape[1])
            parts.append(np.argpartition(-scores, best - 1, axis=1)[:, :best].ravel())
        counts = self.neighbours.arrays(self.catalog)[0]  # (N,)
        top = min(self.candidates_popular, counts.size)
        if top:
            parts.append(np.argpartition(-counts, top - 1)[:top])
        return np.unique(np.concatenate(parts).astype(np.intp))

    def top_k(self, states: Mapping[str, UserState], k: int) -> dict[str, Ranked]:
        """Each user's k best items, best first, ties by catalog row, and beside them up to
        `new_item_slots` new items that match the user's text interest (for an app's
        exploration slot). A user with no events yet gets empty lists. Every step is done for
        the whole batch of users at once, `users_per_pass` users at a time."""
        users = [u for u in states if states[u].events > 0]
        out = {u: Ranked([], [], [], []) for u in states}
        if not users or len(self.catalog) == 0 or k <= 0:
            return out
        indexed = self.index is not None and self.index.active
        passes = -(-len(users) // max(self.users_per_pass, 1))
        chunk = -(-len(users) // passes)  # 130 users: two passes of 65, not 128 and 2
        is_new = self.neighbours.arrays(self.catalog)[0] < self.new_item_max  # (N,)
        for start in range(0, len(users), chunk):
            group = users[start : start + chunk]
            group_states = [states[u] for u in group]
            history = self.history_rows(group_states)
            seq = self.sequence_vectors(history, [s.searches for s in group_states])  # (B, d) once, for both
            cols = self.candidates(group_states, history, seq) if indexed else None
            available, raw, rows = self.signals(group_states, cols, history, seq)  # N is M with cols
            weights = self.policy.matrix([len(s.history) for s in group_states])  # (B, C)
            new = is_new if cols is None else is_new[cols]  # (N,)
            lists = blend_lists(raw, rows.scores, rows.user, rows.log_share, weights, available, new, k,
                                self.new_item_slots, self.new_item_min_z)
            ranked = self._ranked(group_states, history, lists.values, lists.signals, rows.slot[lists.row],
                                  lists.listed, k, cols)
            out.update(zip(group, ranked, strict=True))
            del available, raw, rows, lists  # a pass's arrays go before the next pass makes its own
        return out

    def _ranked(self, states: list[UserState], history: Rows, values: F32, signals: F32, interest: Ints,
                listed: npt.NDArray[np.intp], k: int, cols: Cols) -> list[Ranked]:
        """Each user's lists with their explanations (`cf.explain`). listed: (B, L) columns of the
        scores (top-k first, then the new-item picks; -1 padding); values: (B, L) their scores;
        signals: (B, L, C) their standardised signals; interest: (B, L) the interest each came from."""
        b_n, window = len(states), EXPLAIN_WINDOW
        at = np.maximum(listed, 0)  # (B, L) padding read as column 0, dropped below
        rows_listed = at if cols is None else cols[at]  # (B, L) catalog rows
        tails = [rows[-window:] for rows in history]  # each user's newest rows, -1: not in the catalog
        ends = np.r_[0, np.cumsum([t.size for t in tails])].astype(np.intp)  # (B + 1,)
        flat = np.concatenate(tails) if tails else np.zeros(0, np.intp)  # (T,)
        explained = np.where(listed >= 0, rows_listed, -1)  # (B, L) padding explained by nothing
        places, counts = speaking_rows(self.catalog.matrix, explained, flat, ends,
                                       self.neighbours.config.recency_decay)  # (B, L, top), (B, L)
        names = np.empty(flat.size + 1, dtype=object)  # (T + 1,) the ids of `flat`, "" last for -1
        names[:-1] = list(itertools.chain.from_iterable(s.history[-window:] for s in states))
        names[-1] = ""
        named = names[places].reshape(-1, places.shape[2]).tolist()  # (B L, top)
        speaking = [tuple(ids[:n]) for ids, n in zip(named, counts.ravel().tolist(), strict=True)]  # (B L,)
        # what is published is rounded: z to 4 decimals; one call for the whole batch. Every
        # entry of every list is made in flat passes over the (B L,) entries (builtins mapped over
        # them: no Python frame per item), then each user's lists are slices of them.
        rounded = np.round(signals.astype(np.float64), 4).reshape(-1, signals.shape[2]).tolist()  # (B L, C)
        catalog_ids = self.catalog.ids
        listed_ids = [catalog_ids[r] for r in rows_listed.ravel().tolist()]  # (B L,)
        scored = list(map(Scored, listed_ids, values.ravel().tolist()))  # (B L,)
        components = map(dict, map(zip, itertools.repeat(COMPONENTS), rounded))  # (B L,) z per signal
        because = list(map(Because, interest.ravel().tolist(), speaking, components))  # (B L,)
        length = listed.shape[1]
        valid = listed >= 0  # (B, L): a prefix of the top-k, then a prefix of the picks
        n_top = valid[:, :k].sum(axis=1).tolist()  # (B,)
        n_new = valid[:, k:].sum(axis=1).tolist()  # (B,)
        out = []
        for b in range(b_n):
            first = b * length
            top, new = slice(first, first + n_top[b]), slice(first + k, first + k + n_new[b])
            out.append(Ranked(scored[top], scored[new], because[top], because[new]))
        return out


@dataclass(frozen=True)
class Ranked:
    items: list[Scored]  # the top-k, best first
    new_items: list[Scored]  # new items for an exploration slot, not among `items`
    because: list[Because]  # why each of `items` is there
    new_because: list[Because]  # why each of `new_items` is there
