"""Item co-occurrence rows: the sparse, mergeable form of `cf.cooccurrence.SequentialCooccurrence`
that workers keep per item, plus each item's interaction count and decayed popularity.

An interaction (u, i) after u's recent items j_1..j_L (newest last) yields row deltas
    row i:    count += 1,  popularity += 1 (at the event time),  pairs[j_l] += p^(L - l)
    row j_l:  pairs[i] += p^(L - l)
Deltas of many events add up (`add_into`) before they are merged into a row (`merge_row`), so a
batch costs one message per touched row. A row keeps its `cap` heaviest pairs.
Popularity decays with half-life h, kept lazily: value v at time a reads v 2^(-(t - a)/h) at t.

Scores, for a user whose recent items are j_1..j_L (newest last), over catalog items n:
    cooc[n] = sum_l r^(L - l) C[j_l, n] / sqrt(c_{j_l} c_n)        c: interaction counts
    popularity[n] = v_n 2^(-(t - a_n)/h)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from cf.catalog import ItemCatalog
from cf.cooccurrence import position_weights
from cf.pair_arena import PairArena, scatter_pairs

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CoocConfig:
    window: int = 20  # recent items an interaction pairs with, and a user's scored by
    pair_decay: float = 0.9  # p: a pair l steps apart counts p^(l-1)
    recency_decay: float = 0.8  # r: the l-th newest recent item speaks with weight r^(l-1)
    half_life_s: float = 7 * 24 * 3600.0  # popularity
    row_size: int = 200  # pairs kept per row


def _decay(dt_ms: float, half_life_s: float) -> float:
    """2^(-dt/h) for dt >= 0 in ms, h in seconds."""
    return math.exp2(-max(dt_ms, 0.0) / 1000.0 / half_life_s)


@dataclass
class RowDelta:
    count: float = 0.0
    ts_ms: int = 0  # newest event time among the counted interactions (0: pairs only)
    pairs: dict[str, float] = field(default_factory=dict)
    popularity: float = 0.0  # the counted interactions decayed to ts_ms

    def to_obj(self) -> dict[str, object]:
        return {"count": self.count, "ts": self.ts_ms, "pairs": self.pairs,
                "popularity": self.popularity}

    @classmethod
    def from_obj(cls, data: Mapping[str, Any]) -> RowDelta:
        pairs = data["pairs"]
        if not isinstance(pairs, dict):
            raise TypeError("pairs must be an object")
        return cls(float(data["count"]), int(data["ts"]), {str(k): float(v) for k, v in pairs.items()},
                   float(data["popularity"]))


def add_into(out: dict[str, RowDelta], batch: Mapping[str, RowDelta], half_life_s: float) -> None:
    """Adds a batch of deltas to the running per-row sums in `out`; popularity decayed to the
    newest time, as `merge_row` would."""
    for row, d in batch.items():
        acc = out.setdefault(row, RowDelta(ts_ms=d.ts_ms))
        ts = max(acc.ts_ms, d.ts_ms)
        acc.popularity = (acc.popularity * _decay(ts - acc.ts_ms, half_life_s)
                          + d.popularity * _decay(ts - d.ts_ms, half_life_s))
        acc.count += d.count
        acc.ts_ms = ts
        for j, w in d.pairs.items():
            acc.pairs[j] = acc.pairs.get(j, 0.0) + w


@dataclass(frozen=True)
class ItemRow:
    count: float = 0.0  # interactions, all time
    popularity: float = 0.0  # decayed interactions at `at_ms`
    at_ms: int = 0
    pairs: dict[str, float] = field(default_factory=dict)

    def popularity_at(self, now_ms: int, half_life_s: float) -> float:
        return self.popularity * _decay(now_ms - self.at_ms, half_life_s)

    def to_json(self) -> bytes:
        return orjson.dumps({"count": self.count, "popularity": self.popularity, "at": self.at_ms,
                             "pairs": self.pairs})

    @classmethod
    def from_json(cls, raw: bytes) -> ItemRow:
        data = orjson.loads(raw)
        pairs = data["pairs"]  # JSON object keys are strings already
        if not all(type(w) is float for w in pairs.values()):  # what `to_json` writes; else convert
            pairs = {k: float(w) for k, w in pairs.items()}
        return cls(float(data["count"]), float(data["popularity"]), int(data["at"]), pairs)


@dataclass(frozen=True, slots=True)
class HeldRow:
    """An item's row as every worker holds it for scoring: its pairs as interned ids beside one
    float32 array. MovieLens-100k's 1,682 rows at 200 pairs take 30 MB as `ItemRow` dicts (a
    dict entry and a float object per pair) and 4.7 MB held like this."""

    count: float
    popularity: float
    at_ms: int
    ids: tuple[str, ...]  # (L,) the paired items j, each string shared by every row naming it
    weights: F32  # (L,) their pair weights w_jn

    @classmethod
    def of(cls, row: ItemRow) -> HeldRow:
        ids = tuple(map(sys.intern, row.pairs))
        return cls(row.count, row.popularity, row.at_ms, ids,
                   np.fromiter(row.pairs.values(), np.float32, len(ids)))


def merge_row(row: ItemRow | None, delta: RowDelta, config: CoocConfig) -> ItemRow:
    """Add a delta to a row; popularity decays like `cf.decay.decay_merge` (a late delta is
    discounted, never amplified). The row keeps its `row_size` heaviest pairs."""
    row = row or ItemRow()
    if delta.popularity and delta.ts_ms >= row.at_ms:
        popularity = row.popularity_at(delta.ts_ms, config.half_life_s) + delta.popularity
        at = delta.ts_ms
    else:
        late = _decay(row.at_ms - delta.ts_ms, config.half_life_s)
        popularity, at = row.popularity + delta.popularity * late, row.at_ms
    pairs = dict(row.pairs)
    for j, w in delta.pairs.items():
        pairs[j] = pairs.get(j, 0.0) + w
    return ItemRow(row.count + delta.count, popularity, at, heaviest(pairs, config.row_size))


def heaviest(pairs: dict[str, float], size: int) -> dict[str, float]:
    """The `size` heaviest pairs; among equal weights at the cut, the smallest ids.
    Equivalent to sorting by (-w, id) and keeping `size`, without sorting the whole row."""
    if len(pairs) <= size:
        return pairs
    cut = sorted(pairs.values(), reverse=True)[size - 1]  # floats only: far cheaper than keyed items
    kept = {j: w for j, w in pairs.items() if w > cut}
    ties = sorted(j for j, w in pairs.items() if w == cut)[: size - len(kept)]
    kept.update(dict.fromkeys(ties, cut))
    return kept


class NeighbourIndex:
    """Every item's row, as read from the item-neighbours topic, scored against a catalog.
    Per-row arrays (catalog rows, weights) are compiled lazily into a `PairArena` and dropped
    when the row changes; the (N,) count and popularity arrays are kept current row by row, and
    rebuilt only when the catalog's rows move."""

    def __init__(self, config: CoocConfig) -> None:
        self.config = config
        self.rows: dict[str, HeldRow] = {}
        # per catalog row, its item's row compiled to (catalog rows, weights), not until first
        # used and not after a change
        self._arena = PairArena()
        self._catalog: ItemCatalog | None = None  # the catalog the arrays are aligned to ...
        self._catalog_version = -1  # ... at this version
        self._counts = np.zeros(0, np.float32)  # (N,) c_n
        self._value = np.zeros(0, np.float64)  # (N,) v_n
        self._at = np.zeros(0, np.float64)  # (N,) a_n, ms

    def apply(self, item_id: str, row: ItemRow | HeldRow | None) -> None:
        held = row if row is None or isinstance(row, HeldRow) else HeldRow.of(row)
        if held is None:
            self.rows.pop(item_id, None)
        else:
            self.rows[item_id] = held
        n = self._catalog.row_of(item_id) if self._catalog is not None else None
        if n is not None and self._catalog_version == self._catalog.version:  # type: ignore[union-attr]
            self._counts[n], self._value[n], self._at[n] = ((held.count, held.popularity, held.at_ms)
                                                            if held is not None else (0.0, 0.0, 0))
            self._arena.drop(n)

    def _row(self, catalog: ItemCatalog, item_id: str) -> tuple[npt.NDArray[np.intp], F32]:
        """(catalog rows, pair weights) of an item's row, items outside the catalog dropped."""
        n = catalog.row_of(item_id)
        if n is None:
            return self._compile(catalog, item_id)
        self.arrays(catalog)
        return self._arena.row(n) if self._arena.compiled(n) else self._compile_row(catalog, n)

    def _compile(self, catalog: ItemCatalog, item_id: str) -> tuple[npt.NDArray[np.intp], F32]:
        row = self.rows.get(item_id)
        if row is None:
            return np.zeros(0, np.intp), np.zeros(0, np.float32)
        at = catalog.rows_or_missing(row.ids, len(row.ids))  # (L,) -1: not in the catalog
        keep = at >= 0  # (L,)
        return (at, row.weights) if keep.all() else (at[keep], row.weights[keep])

    def _compile_row(self, catalog: ItemCatalog, n: int) -> tuple[npt.NDArray[np.intp], F32]:
        """`_compile` of catalog row n's item, kept until its row or the catalog's rows change."""
        return self._arena.put(n, *self._compile(catalog, catalog.ids[n]))

    def arrays(self, catalog: ItemCatalog) -> tuple[F32, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(N,) counts c_n, (N,) popularity values v_n and (N,) their times a_n (ms), in catalog
        row order."""
        if self._catalog is not catalog or self._catalog_version != catalog.version:
            self._arena = PairArena(len(catalog))  # rows moved: every compiled row is stale
            self._counts = np.zeros(len(catalog), np.float32)
            self._value = np.zeros(len(catalog), np.float64)
            self._at = np.zeros(len(catalog), np.float64)
            for item_id, row in self.rows.items():
                n = catalog.row_of(item_id)
                if n is not None:
                    self._counts[n], self._value[n], self._at[n] = row.count, row.popularity, row.at_ms
            self._catalog, self._catalog_version = catalog, catalog.version
        return self._counts, self._value, self._at

    def cooc_scores(self, catalog: ItemCatalog, recents: Sequence[Sequence[str]],
                    cols: npt.NDArray[np.intp] | None = None,
                    recent_rows: Sequence[npt.NDArray[np.intp]] | None = None) -> F32:
        """(B, N) co-occurrence scores for users with these recent items (oldest first); (B, M)
        of the catalog rows `cols` when given. recent_rows: the same items' catalog rows (-1 for
        one not in it), when already looked up.

            score[b, n] = inv_n * sum_{j in recent_b} r_j inv_j w_jn,   inv = 1 / sqrt(count)

        with r_j the recency weight of j's place among b's last `window` items and w_jn j's row.
        Every user's recent items are gathered as arrays, and the sum over all users is one
        compiled pass over their rows' pairs where the arena holds them (`scatter_pairs`)."""
        counts = self.arrays(catalog)[0]  # (N,)
        inv = np.divide(1.0, np.sqrt(counts), out=np.zeros_like(counts), where=counts > 0)  # (N,)
        m = len(catalog) if cols is None else cols.size  # M: columns scored
        window = self.config.window
        recency = position_weights(window, self.config.recency_decay)  # (window,) oldest first
        b_n = len(recents)
        lasts = [list(recent)[-window:] for recent in recents]
        if recent_rows is None:
            recent_rows = [catalog.rows_or_missing(last, len(last)) for last in lasts]
        else:
            recent_rows = [rows[-window:] for rows in recent_rows]
        lengths = [len(last) for last in lasts]
        js = np.concatenate(recent_rows) if recent_rows else np.zeros(0, np.intp)  # (P,) catalog rows j
        users = np.repeat(np.arange(b_n), lengths)  # (P,) b
        r = np.concatenate([recency[window - n :] for n in lengths]) if lengths else np.zeros(0)  # (P,) r_j
        keep = (js >= 0)
        keep[keep] = inv[js[keep]] > 0
        kept = js[keep]  # (P',) catalog rows j with a count
        if not kept.size:
            return np.zeros((b_n, m), np.float32)
        arena = self._arena
        for n in set(kept[arena.lengths[kept] < 0].tolist()):  # rows not compiled since they changed
            self._compile_row(catalog, n)
        factors = r[keep] * inv[kept]  # (P',) r_j inv_j
        position = np.zeros(0, np.intp)  # no map: every catalog row is a column
        if cols is not None:  # each row's pairs go through a row -> column map: no (B, N) array for M << N
            position = np.full(len(catalog), -1, np.intp)  # (N,) column of a catalog row, -1: none
            position[cols] = np.arange(cols.size)
        out = np.zeros((b_n, m), np.float64)  # (B, M)
        scatter_pairs(out, users[keep], factors.astype(np.float64, copy=False), kept, arena.starts,
                      arena.lengths, arena.columns, arena.weights, position)
        out *= inv[None, :] if cols is None else inv[cols][None, :]
        return out.astype(np.float32)

    def neighbours_of(self, catalog: ItemCatalog, recent: Sequence[str], items: int) -> npt.NDArray[np.intp]:
        """Catalog rows paired with a user's `items` newest recent items: co-occurrence candidates."""
        rows = [self._row(catalog, j)[0] for j in list(recent)[-items:] if catalog.row_of(j) is not None]
        return np.concatenate(rows) if rows else np.zeros(0, np.intp)

    def popularity(self, catalog: ItemCatalog, now_ms: Sequence[int],
                   cols: npt.NDArray[np.intp] | None = None) -> F32:
        """(B, N) decayed popularity at each user's `now` ((B, M) of `cols`):

            v_n 2^(-max(t_b - a_n, 0)/h) = v_n min(1, 2^((r - t_b)/h) 2^((a_n - r)/h))

        with r the newest a_n: one exp2 per user and per item, their outer product, no exp2
        per (user, item). Exponents are clipped at +-1000 half-lives (float64 holds 2^1000); past
        that a popularity is 0 or v_n either way."""
        _, value, at = self.arrays(catalog)  # (N,), (N,) ms
        if cols is not None:
            value, at = value[cols], at[cols]  # (M,), (M,)
        if at.size == 0:
            return np.zeros((len(now_ms), 0), np.float32)
        h_ms = 1000.0 * self.config.half_life_s
        newest = float(at.max())
        user = np.exp2(np.clip((newest - np.asarray(now_ms, np.float64)) / h_ms, -1000.0, 1000.0))  # (B,)
        item = np.exp2(np.maximum((at - newest) / h_ms, -1000.0))  # (N,) <= 1
        factor = np.outer(user, item)  # (B, N)
        np.minimum(factor, 1.0, out=factor)
        factor *= value[None, :]
        return factor.astype(np.float32)


def batch_deltas(histories: Mapping[str, Sequence[str]],
                 interactions: Iterable[tuple[str, str | None, int]],
                 config: CoocConfig) -> dict[str, RowDelta]:
    """All row deltas of a batch of (user, item, ts_ms) interactions in partition order, each
    paired with its user's history as it stood just before it (`histories`: before the batch,
    oldest first); like `UserState.history`, a repeated item moves to the end. The batch's
    deltas are summed per row as they are made (what `add_into` does for deltas from many
    batches)."""
    recent = {u: list(h) for u, h in histories.items()}
    out: dict[str, RowDelta] = {}
    weights = position_weights(config.window, config.pair_decay).tolist()  # (window,) oldest first
    for user, item, ts_ms in interactions:
        if item is None:
            continue
        history = recent.setdefault(user, [])
        own = out.get(item)
        if own is None:
            own = out[item] = RowDelta(ts_ms=ts_ms)
        ts = max(own.ts_ms, ts_ms)
        own.popularity = (own.popularity * _decay(ts - own.ts_ms, config.half_life_s)
                          + _decay(ts - ts_ms, config.half_life_s))
        own.count += 1.0
        own.ts_ms = ts
        last = history[-config.window :]
        for j, w in zip(last, weights[config.window - len(last) :], strict=True):
            own.pairs[j] = own.pairs.get(j, 0.0) + w
            other = out.get(j)
            if other is None:
                other = out[j] = RowDelta()
            other.pairs[item] = other.pairs.get(item, 0.0) + w
        if item in history:
            history.remove(item)
        history.append(item)
    return out
