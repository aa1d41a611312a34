"""An approximate nearest-neighbour index over the catalog, kept current as items come and go.

Above `min_items`, scoring every catalog row per user costs more than it should (19 ms per user
at 1M items, `interests bench scoring`); the scorer then ranks a few hundred candidates per user
instead, and this index supplies the text ones: faiss's inverted-file index (IVF-Flat, inner
product) over the unit item vectors e_n. A user's centred interest u' ranks items by
<u', e_n - m> / |e_n - m|; the index ranks by <u', e_n>, which differs only by the per-item
factor 1/|e_n - m| and a per-user constant, so it finds the candidates and the scorer re-scores
them exactly.

The index follows the catalog through its change log (`ItemCatalog.take_changes`): new and changed
items are added under stable integer ids (a changed item is removed first), removed items are
removed, all applied in one call before a search. It is trained (k-means cells) when the catalog
first reaches `min_items` and retrained from scratch when the catalog has doubled since, so the
cells keep fitting the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cf.catalog import ItemCatalog

F32 = npt.NDArray[np.float32]


@dataclass
class CatalogIndex:
    catalog: ItemCatalog
    min_items: int = 100_000  # below this many items the scorer ranks every item exactly
    nprobe: int = 16  # cells scanned per query
    _index: object | None = None  # faiss.IndexIVFFlat
    _trained_at: int = 0  # catalog size at the last training
    _ids: dict[str, int] = field(default_factory=dict)  # item id -> stable faiss id
    _items: list[str] = field(default_factory=list)  # faiss id -> item id

    def __post_init__(self) -> None:
        self.catalog.track_changes()

    @property
    def active(self) -> bool:
        return len(self.catalog) >= self.min_items

    def search(self, queries: F32, k: int) -> npt.NDArray[np.intp]:
        """(B, D) float32 queries -> (B, k) catalog rows of the best inner products, -1 where
        fewer were found."""
        index = self._current()
        import faiss  # noqa: F401  (the index object's module)

        _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)  # type: ignore[attr-defined]
        rows = np.full(found.shape, -1, dtype=np.intp)  # (B, k)
        for (b, j), faiss_id in np.ndenumerate(found):
            if faiss_id >= 0:
                row = self.catalog.row_of(self._items[faiss_id])
                rows[b, j] = -1 if row is None else row
        return rows

    def _current(self) -> object:
        n = len(self.catalog)
        if self._index is None or n >= 2 * self._trained_at:
            self._train()
        else:
            self._apply_changes()
        assert self._index is not None
        return self._index

    def _train(self) -> None:
        """k-means cells on (a sample of) the catalog, then every item added."""
        import faiss

        matrix = self.catalog.matrix  # (N, D) unit rows
        n, dim = matrix.shape
        cells = max(1, min(int(4 * math.sqrt(n)), n // 39))  # faiss wants >= 39 points per cell
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
        sample = matrix
        if n > 256 * cells:
            rng = np.random.default_rng(0)
            sample = matrix[rng.choice(n, 256 * cells, replace=False)]  # (S, D)
        index.train(np.ascontiguousarray(sample))
        index.nprobe = min(self.nprobe, cells)
        self._ids, self._items = {}, []
        ids = np.array([self._id(item) for item in self.catalog.ids], dtype=np.int64)  # (N,)
        index.add_with_ids(np.ascontiguousarray(matrix), ids)
        self.catalog.take_changes()  # all in the index now
        self._index, self._trained_at = index, n

    def _apply_changes(self) -> None:
        changed = self.catalog.take_changes()  # item ids, oldest change first
        if not changed:
            return
        import faiss

        index = self._index
        known = [self._ids[i] for i in changed if i in self._ids]
        if known:
            index.remove_ids(faiss.IDSelectorBatch(np.array(known, dtype=np.int64)))  # type: ignore[attr-defined]
        present = [i for i in changed if i in self.catalog]
        if present:
            rows = [self.catalog.row_of(i) for i in present]
            vectors = self.catalog.matrix[np.array(rows, dtype=np.intp)]  # (C, D)
            ids = np.array([self._id(i) for i in present], dtype=np.int64)  # (C,)
            index.add_with_ids(np.ascontiguousarray(vectors), ids)  # type: ignore[attr-defined]

    def _id(self, item_id: str) -> int:
        faiss_id = self._ids.get(item_id)
        if faiss_id is None:
            faiss_id = self._ids[item_id] = len(self._items)
            self._items.append(item_id)
        return faiss_id
