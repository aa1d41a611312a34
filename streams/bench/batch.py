"""`interests bench batch`: what one batch of the interest stage computes, with no broker and no Faust.

MovieLens-100k's first 80% of events (in time order) build the users' states and the
co-occurrence rows a worker would hold by then. The rest are cut into batches of `events` events
in time order, what a worker takes at its maximum rate (a few users' sessions), and each batch
goes through the interest stage's own compute, timed step by step (`--order interleaved`: the
same events round-robin over their users, as when many users are active at once):
- `state`: the users' stored states decoded and the new ones encoded (`cf.state.UserState`, what
  the worker reads from and writes to its table);
- `fold`: the users' states, each user's events of the batch at once, rounded as they are stored
  (`cf.batch.apply_interactions`);
- `pairs`: the batch's co-occurrence deltas (`cf.neighbours.batch_deltas`);
- `top_k`: the hybrid lists of the batch's users (`HybridScorer.top_k`);
- `list`: each list as the JSON the worker publishes (`streams.records.ranked_recommendation`).
With INTERESTS_CF_MODEL set, the scorer serves that artifact (factor model, sequential model,
blend), as a worker would. Beside it, `top_k` alone for 1 to 320 users per call: its cost per
call and per user, and the most memory one call held (`tracemalloc`, untimed). The rows stay
as they were at the split (a worker replicates new ones as they come). Medians over batches;
BLAS on one thread and start-up frozen out of garbage collections, as in the worker. Every time
is this machine's, so compare runs side by side.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from cf.batch import Interaction, apply_interactions
from cf.catalog import ItemCatalog
from cf.catalog_index import CatalogIndex
from cf.neighbours import NeighbourIndex, batch_deltas, merge_row
from cf.serving import HybridScorer
from cf.state import UserState
from encoders import Encoder
from streams.allocator import keep_freed_memory
from streams.collector import freeze_start_up
from streams.encoder_setup import open_encoder
from streams.offline.datasets import interleaved, load_dataset
from streams.offline.evaluation import item_vectors
from streams.records import ranked_recommendation
from streams.settings import Settings

WARM_SHARE = 0.8  # of the events, in time order, that build the states and rows first
USERS_PER_CALL = (1, 5, 20, 80, 320)
STEPS = ("state", "fold", "pairs", "top_k", "list")


def run_batch_bench(settings: Settings, dataset_name: str = "ml-100k", events_per_batch: int = 80,
                    encoder: Encoder | None = None, order: str = "sessions") -> dict[str, Any]:
    """`order`: the measured events in time order ("sessions") or `interleaved` over users."""
    started = time.monotonic()
    keep_freed_memory()  # as a worker does
    data = load_dataset(dataset_name)
    encoder = encoder or open_encoder(settings, cache_texts=0)
    catalog = ItemCatalog(encoder.dim)
    for item, vector in zip(data.items, item_vectors(encoder, data), strict=True):
        catalog.upsert(item.item_id, vector)
    weights, decay, interests, cooc = (settings.event_weights(), settings.decay(), settings.interests(),
                                       settings.cooc())
    events = [Interaction(user_id=x.user_id, event_id=f"e{n}", ts_ms=x.ts_ms,
                          weight=weights.weight(x.type, x.rating), vector=catalog.vector(x.item_id),
                          item_id=x.item_id) for n, x in enumerate(data.interactions)]
    split = int(WARM_SHARE * len(events))
    stored: dict[str, bytes] = {  # the worker's table
        u: s.to_bytes() for u, s in apply_interactions(
            {}, events[:split], decay, encoder.dim, encoder.version, catalog.vector, interests).items()}
    neighbours = NeighbourIndex(cooc)
    for item_id, delta in batch_deltas({}, [(x.user_id, x.item_id, x.ts_ms) for x in events[:split]],
                                       cooc).items():
        neighbours.apply(item_id, merge_row(None, delta, cooc))
    scorer = HybridScorer(catalog, neighbours, fold_in_items=settings.cf_fold_in_items,
                          new_item_slots=settings.new_item_slots, new_item_max=settings.new_item_max,
                          index=CatalogIndex(catalog, settings.ann_min_items, settings.ann_nprobe),
                          candidates_text=settings.ann_candidates, interests=interests)
    if settings.cf_model:  # the artifact a worker would serve (INTERESTS_CF_MODEL)
        from streams.app import load_cf

        artifact = load_cf(Path(settings.cf_model), encoder.version)
        scorer.model, scorer.policy, scorer.sequence = artifact.model, artifact.policy, artifact.sequence
    measured = events[split:] if order == "sessions" else interleaved(events[split:], lambda x: x.user_id)
    steps: dict[str, list[float]] = {name: [] for name in STEPS}
    users_per_batch: list[int] = []
    model = f"{encoder.version}+bench"
    freeze_start_up()  # as a worker does once its catalog and neighbour copies are loaded
    with threadpool_limits(1, user_api="blas"):
        warm = {u: UserState.from_bytes(raw) for u, raw in list(stored.items())[:5]}
        scorer.top_k(warm, settings.top_k)  # first-call costs out of the way
        for start in range(0, len(measured), events_per_batch):
            batch = measured[start : start + events_per_batch]
            t0 = time.perf_counter()
            batch_users = dict.fromkeys(x.user_id for x in batch)  # each state read once, as the worker does
            before = {u: UserState.from_bytes(raw) if (raw := stored.get(u)) else None for u in batch_users}
            t1 = time.perf_counter()
            after = apply_interactions(before, batch, decay, encoder.dim, encoder.version, catalog.vector,
                                       interests, stored=True)  # rounded as stored, as the worker ranks
            t2 = time.perf_counter()
            histories = {u: s.history if s is not None else () for u, s in before.items()}
            batch_deltas(histories, [(x.user_id, x.item_id, x.ts_ms) for x in batch], cooc)
            t3 = time.perf_counter()
            ranked = scorer.top_k(after, settings.top_k)
            t5 = time.perf_counter()
            now_ms = int(time.time() * 1000)
            for u, r in ranked.items():
                ranked_recommendation(u, now_ms, batch[-1].event_id, r, model)
            t6 = time.perf_counter()
            for u, state in after.items():
                shown = tuple(s.item_id for s in ranked[u].items + ranked[u].new_items)
                stored[u] = state.to_bytes(shown)
            t7 = time.perf_counter()
            for name, seconds in (("state", (t1 - t0) + (t7 - t6)), ("fold", t2 - t1),
                                  ("pairs", t3 - t2), ("top_k", t5 - t3), ("list", t6 - t5)):
                steps[name].append(seconds)
            users_per_batch.append(len(after))
        states = {u: UserState.from_bytes(raw) for u, raw in stored.items()}
        users = list(states)
        per_call = []
        for b in USERS_PER_CALL:
            calls = [{u: states[u] for u in users[i : i + b]} for i in range(0, min(len(users), 640), b)]
            times = []
            for group in calls:
                t0 = time.perf_counter()
                scorer.top_k(group, settings.top_k)
                times.append(time.perf_counter() - t0)
            ms = 1000 * statistics.median(times)
            peak = traced_peak_mb(partial(scorer.top_k, calls[0], settings.top_k))
            per_call.append({"users": b, "ms_per_call": round(ms, 3), "ms_per_user": round(ms / b, 3),
                             "peak_mb": round(peak, 1)})
    median_ms = {name: 1000 * statistics.median(ts) for name, ts in steps.items()}
    total = sum(median_ms.values())
    return {
        "order": order,
        "events_per_batch": events_per_batch,
        "batches": len(users_per_batch),
        "users_per_batch": statistics.median(users_per_batch),
        "ms": {name: round(ms, 3) for name, ms in median_ms.items()},
        "ms_total": round(total, 3),
        "us_per_event": round(1000 * total / events_per_batch, 1),
        "top_k_per_call": per_call,
        "items": len(catalog),
        "encoder": encoder.version,
        "model": scorer.version,
        "wall_s": round(time.monotonic() - started, 1),
    }


def traced_peak_mb(call: Callable[[], object]) -> float:
    """The most memory `call` held at once (Python objects and numpy arrays, as `tracemalloc`
    sees them): what a process keeps after a batch, since freed memory stays with it."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def table(report: dict[str, Any]) -> str:
    ms = report["ms"]
    lines = [f"{report['batches']} batches of {report['events_per_batch']} MovieLens events, "
             f"{report['order']} ({report['users_per_batch']:.0f} users each, median), "
             f"{report['items']} items, model {report['model']}, medians:",
             "  " + "   ".join(f"{name} {ms[name]:.2f} ms" for name in STEPS)
             + f"   total {report['ms_total']:.2f} ms = {report['us_per_event']:.0f} us per event",
             f"{'users per top_k call':>22}{'ms per call':>13}{'ms per user':>13}{'peak MB':>9}"]
    lines += [f"{r['users']:>22}{r['ms_per_call']:>13.2f}{r['ms_per_user']:>13.3f}{r['peak_mb']:>9.1f}"
              for r in report["top_k_per_call"]]
    return "\n".join(lines)
