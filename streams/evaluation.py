"""`interests eval`: replay a data set in event-time order through the worker's own `cf/` and
`encoders/` code, in process, and measure how well each method ranks the next item.

Protocol `prequential`: for every event of a user with history, *before* the state is updated,
each method ranks every item the user has not consumed; a hit when the event's item is in the
top k. Slices: cold items (fewer than 5 interactions before the event) and new users (their
first 5 events).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from cf.catalog import ItemCatalog
from cf.cooccurrence import ItemCooccurrence
from cf.decay import DecayConfig, decay_merge
from cf.popularity import DecayedPopularity, Popularity
from cf.ranking_metrics import RankingTally, rank_of, top_indices
from cf.scoring import cosine_scores
from cf.state import UserState
from cf.weights import EventWeights
from encoders import Encoder, item_document
from streams.datasets import Dataset

COLD_ITEM_MAX = 5  # an item with fewer interactions before the event is cold
NEW_USER_EVENTS = 5  # a user's first events


class Method(Protocol):
    name: str

    def scores(self, user: str, now_ms: int) -> npt.NDArray[np.float32]: ...

    def update(self, user: str, item: int, ts_ms: int, rating: float | None) -> None: ...


class TextInterest:
    """The worker's model: `cf.decay.decay_merge` of item text vectors into a `UserState`, scored
    by `cf.scoring.cosine_scores`, centred on the catalog mean as served. `centred=False` is the
    plain-cosine ablation."""

    def __init__(self, vectors: npt.NDArray[np.float32], weights: EventWeights, decay: DecayConfig,
                 space: str, centred: bool = True) -> None:
        self.name = "text" if centred else "text_uncentred"
        self.centred = centred
        self.vectors = vectors  # (N, D) unit rows
        self.catalog = ItemCatalog(vectors.shape[1], capacity=vectors.shape[0])
        for n, v in enumerate(vectors):
            self.catalog.upsert(str(n), v)
        self.weights, self.decay, self.space = weights, decay, space
        self.states: dict[str, UserState] = {}

    def scores(self, user: str, now_ms: int) -> npt.NDArray[np.float32]:
        state = self.states.get(user)
        if state is None:
            return np.zeros(len(self.catalog), np.float32)
        sums = np.array([state.weight_sum], np.float32) if self.centred else None
        return cosine_scores(self.catalog, state.vector[None, :], sums)[0]  # (N,)

    def update(self, user: str, item: int, ts_ms: int, rating: float | None) -> None:
        state = self.states.get(user) or UserState.empty(self.vectors.shape[1], self.space)
        w = self.weights.weight("rate" if rating is not None else "view", rating)
        self.states[user] = decay_merge(state, self.vectors[item], w, ts_ms, self.decay)


@dataclass
class MethodResult:
    overall: RankingTally = field(default_factory=RankingTally)
    cold_items: RankingTally = field(default_factory=RankingTally)
    new_users: RankingTally = field(default_factory=RankingTally)
    recommended: set[int] = field(default_factory=set)

    def to_json(self, n_items: int) -> dict[str, object]:
        out: dict[str, object] = {k: v for k, v in self.overall.summary().items()}
        out["coverage"] = len(self.recommended) / max(n_items, 1)
        out["slices"] = {"cold_items": self.cold_items.summary(), "new_users": self.new_users.summary()}
        return out


def item_vectors(encoder: Encoder, dataset: Dataset) -> npt.NDArray[np.float32]:
    """(N, D) float32: each item's document embedded once, in dataset.items order."""
    return encoder.encode([item_document(i.title, i.text, i.tags) for i in dataset.items])


def prequential(dataset: Dataset, methods: Sequence[Method], k: int = 10,
                progress: bool = True) -> dict[str, MethodResult]:
    index = {item.item_id: n for n, item in enumerate(dataset.items)}
    n_items = len(index)
    results = {m.name: MethodResult() for m in methods}
    for r in results.values():
        for tally in (r.overall, r.cold_items, r.new_users):
            tally.k = k
    consumed: dict[str, list[int]] = defaultdict(list)
    item_counts = np.zeros(n_items, dtype=np.int64)
    for x in tqdm(dataset.interactions, desc="prequential", unit="ev", disable=not progress,
                  mininterval=1.0):
        target = index.get(x.item_id)
        if target is None:
            continue
        history = consumed[x.user_id]
        if history:
            cold = item_counts[target] < COLD_ITEM_MAX
            new_user = len(history) < NEW_USER_EVENTS
            for m in methods:
                scores = m.scores(x.user_id, x.ts_ms).astype(np.float32, copy=True)  # (N,)
                scores[history] = -np.inf
                rank = rank_of(scores, target)
                result = results[m.name]
                result.overall.add(rank)
                if cold:
                    result.cold_items.add(rank)
                if new_user:
                    result.new_users.add(rank)
                result.recommended.update(top_indices(scores, k).tolist())
        for m in methods:
            m.update(x.user_id, target, x.ts_ms, x.rating)
        history.append(target)
        item_counts[target] += 1
    return results


def run_eval(dataset: Dataset, encoder: Encoder, weights: EventWeights, decay: DecayConfig,
             k: int = 10, progress: bool = True) -> dict[str, object]:
    started = time.monotonic()
    vectors = item_vectors(encoder, dataset)
    n_items = len(dataset.items)
    methods: list[Method] = [
        Popularity(n_items),
        DecayedPopularity(n_items, half_life_s=decay.half_life_s),
        ItemCooccurrence(n_items),
        TextInterest(vectors, weights, decay, encoder.version),
        TextInterest(vectors, weights, decay, encoder.version, centred=False),
    ]
    with threadpool_limits(1, user_api="blas"):  # one small matvec per event: threads only cost
        results = prequential(dataset, methods, k=k, progress=progress)
    return {
        "dataset": dataset.name,
        "protocol": "prequential",
        "k": k,
        "encoder": encoder.version,
        "half_life_s": decay.half_life_s,
        "events": len(dataset.interactions),
        "wall_s": round(time.monotonic() - started, 1),
        "methods": {name: r.to_json(n_items) for name, r in results.items()},
    }


def table(report: dict[str, object]) -> str:
    methods = report["methods"]
    assert isinstance(methods, dict)
    lines = [f"{report['dataset']} {report['protocol']} @{report['k']}  ({report['wall_s']} s)",
             f"{'method':<20}{'HR':>8}{'NDCG':>8}{'MRR':>8}{'cov':>8}{'HR cold':>9}{'HR new':>8}"]
    for name, m in methods.items():
        lines.append(
            f"{name:<20}{m['hr']:>8.4f}{m['ndcg']:>8.4f}{m['mrr']:>8.4f}{m['coverage']:>8.3f}"
            f"{m['slices']['cold_items']['hr']:>9.4f}{m['slices']['new_users']['hr']:>8.4f}")
    return "\n".join(lines)


def write(report: dict[str, object], out: Path) -> None:
    out.write_text(json.dumps(report, indent=2) + "\n")
