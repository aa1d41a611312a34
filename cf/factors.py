"""Matrix factorisation for implicit feedback, served by folding users in online.

Training is implicit's ALS (Hu, Koren, Volinsky 2008, "Collaborative Filtering for Implicit
Feedback Datasets"): each consumed item has confidence c = alpha (binary interactions), every
other item c = 0 with preference 0. Serving never stores user factors: a user's factor is
recomputed from their recent items with the closed-form ALS user step (what implicit's
`recalculate_user` does), so a new interaction moves it at once, with no retraining.

Items the model has never seen get factors from their text: a ridge map W from text vectors to
item factors, fitted on the trained items (a content-to-factor projection, as in Gantner et
al. 2010, "Learning Attribute-to-Feature Mappings for Cold-Start Recommendations").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

F32 = npt.NDArray[np.float32]
ARTIFACT_FORMAT = "interests-cf/1"


@dataclass(frozen=True)
class FactorModel:
    item_ids: tuple[str, ...]
    item_factors: F32  # (M, F) float32, rows in item_ids order
    projection: F32  # (D, F) float32: text vector -> item factor, for items not in item_ids
    regularization: float
    alpha: float  # confidence of one interaction
    space: str  # encoder version the projection expects
    version: str  # content hash: a changed model has a changed version

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    @cached_property
    def gram(self) -> npt.NDArray[np.float64]:
        """(F, F) float64 Y^T Y + reg I over the trained items: the fold-in's shared term."""
        y = self.item_factors.astype(np.float64)
        return y.T @ y + self.regularization * np.eye(y.shape[1])

    def aligned(self, ids: Sequence[str], text: F32) -> F32:
        """(N, F) factors for catalog rows `ids` with text vectors `text` (N, D): trained rows
        where the model knows the item, `text @ W` where it does not."""
        row = {item: n for n, item in enumerate(self.item_ids)}
        out = (text.astype(np.float32) @ self.projection).astype(np.float32)  # (N, F)
        known = [(n, row[i]) for n, i in enumerate(ids) if i in row]
        if known:
            at, src = (np.array(c, dtype=np.intp) for c in zip(*known, strict=True))
            out[at] = self.item_factors[src]
        return out

    def save(self, folder: Path) -> Path:
        """Writes `factors.npz` (plain arrays, no pickle) and `model.json`; returns the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "factors.npz", item_factors=self.item_factors, projection=self.projection)
        meta = {"format": ARTIFACT_FORMAT, "version": self.version, "item_ids": list(self.item_ids),
                "regularization": self.regularization, "alpha": self.alpha, "space": self.space,
                "factors": self.factors}
        (folder / "model.json").write_text(json.dumps(meta) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> FactorModel:
        meta = json.loads((folder / "model.json").read_text())
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"{folder}: not a {ARTIFACT_FORMAT} model (format {meta.get('format')!r})")
        with np.load(folder / "factors.npz", allow_pickle=False) as arrays:
            item_factors = arrays["item_factors"].astype(np.float32)
            projection = arrays["projection"].astype(np.float32)
        return cls(tuple(meta["item_ids"]), item_factors, projection, float(meta["regularization"]),
                   float(meta["alpha"]), str(meta["space"]), str(meta["version"]))


@dataclass(frozen=True)
class ALSParams:
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 3.0  # confidence of one interaction
    iterations: int = 15
    ridge: float = 1.0  # of the text-to-factor projection
    seed: int = 0


def train_als(
    histories: Mapping[str, Sequence[int]],  # user -> consumed item rows (0..M-1)
    n_items: int,
    params: ALSParams,
) -> F32:
    """(M, F) float32 item factors by implicit's ALS on the binary user x item matrix."""
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares

    rows = [u for u, items in enumerate(histories.values()) for _ in set(items)]
    cols = [i for items in histories.values() for i in sorted(set(items))]
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                           shape=(len(histories), n_items))  # (U, M) binary
    with threadpool_limits(1, user_api="blas"):  # implicit parallelises itself; BLAS threads fight it
        model = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization,
                                        alpha=params.alpha, iterations=params.iterations,
                                        random_state=params.seed, use_gpu=False)
        model.fit(matrix, show_progress=False)
    return np.asarray(model.item_factors, dtype=np.float32)


def fit_projection(text: F32, item_factors: F32, ridge: float = 1.0) -> F32:
    """(D, F) ridge map from text vectors (M, D) to item factors (M, F):
        W = (E^T E + ridge I)^-1 E^T Y"""
    e = text.astype(np.float64)
    gram = e.T @ e + ridge * np.eye(e.shape[1])  # (D, D)
    return np.linalg.solve(gram, e.T @ item_factors.astype(np.float64)).astype(np.float32)


def model_version(item_ids: Sequence[str], item_factors: F32, projection: F32) -> str:
    digest = hashlib.sha256()
    digest.update("\n".join(item_ids).encode())
    digest.update(item_factors.tobytes())
    digest.update(projection.tobytes())
    return f"als-{digest.hexdigest()[:12]}"


def fold_in(
    item_factors: F32,  # (N, F) float32, catalog-aligned (`FactorModel.aligned`)
    gram: npt.NDArray[np.float64],  # (F, F) Y^T Y + reg I over the trained items
    histories: Sequence[Sequence[int] | npt.NDArray[np.intp]],  # per user: consumed rows of item_factors
    alpha: float,
) -> F32:
    """(B, F) user factors, the ALS user step with binary confidence c = alpha:
        x_u = (Y^T Y + reg I + (alpha - 1) Y_u^T Y_u)^-1  alpha Y_u^T 1
    where Y_u holds the factors of u's items. A user without items gets zeros. Every user's
    system is solved in one batched call, Y_u padded with zero rows (they add nothing)."""
    out = np.zeros((len(histories), item_factors.shape[1]), dtype=np.float32)  # (B, F)
    lengths = [len(items) for items in histories]
    users = [b for b, n in enumerate(lengths) if n]
    if not users:
        return out
    longest = max(lengths)
    padded = np.zeros((len(users), longest), np.intp)  # (U, L) rows, padding row 0 ...
    present = np.zeros((len(users), longest), bool)  # (U, L) ... masked out
    for u, b in enumerate(users):
        padded[u, : lengths[b]] = histories[b]
        present[u, : lengths[b]] = True
    y = item_factors[padded].astype(np.float64) * present[:, :, None]  # (U, L, F)
    a = gram[None] + (alpha - 1.0) * np.matmul(y.transpose(0, 2, 1), y)  # (U, F, F)
    rhs = alpha * y.sum(axis=1)  # (U, F)
    out[users] = np.linalg.solve(a, rhs[:, :, None])[:, :, 0]
    return out


def train_model(
    histories: Mapping[str, Sequence[int]],  # user -> consumed catalog rows
    item_ids: Sequence[str],  # (N,) catalog ids
    text: F32,  # (N, D) float32 text vectors, catalog order
    space: str,
    params: ALSParams = ALSParams(),
) -> FactorModel:
    """ALS on the items that have interactions; the text projection fitted on those items."""
    used = sorted({i for items in histories.values() for i in items})
    if not used:
        raise ValueError("no interactions to train on")
    row = {item: m for m, item in enumerate(used)}
    remapped = {u: [row[i] for i in items] for u, items in histories.items() if items}
    y = train_als(remapped, len(used), params)  # (M, F)
    projection = fit_projection(text[used], y, params.ridge)  # (D, F)
    ids = tuple(item_ids[i] for i in used)
    return FactorModel(ids, y, projection, params.regularization, params.alpha, space,
                       model_version(ids, y, projection))
