"""`interests bench state`: bytes of user state, measured on a real data set.

Every interaction of the data set is merged into its user's state the way the worker does it:
the state is read from its bytes, the event merged, the list shown stored, and the state written
back to bytes. Beside it, the same merges on float32 vectors that never leave memory: the cosine
between the two says what storing the vectors as float16 costs. A user's state is up to K
interests (`cf.interests`); the single vector is their sum, not stored.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cf.decay import decay_merge
from cf.interests import merge_event
from cf.state import UserState
from encoders import Encoder
from streams.encoder_setup import open_encoder
from streams.offline.datasets import load_dataset
from streams.offline.evaluation import item_vectors
from streams.settings import Settings

SHOWN = 10  # item ids of the last list, as the worker keeps them (top_k)


def run_state_bench(settings: Settings, dataset_name: str, limit: int | None,
                    encoder: Encoder | None = None) -> dict[str, Any]:
    started = time.monotonic()
    dataset = load_dataset(dataset_name)
    encoder = encoder or open_encoder(settings)
    vectors = item_vectors(encoder, dataset)  # (N, D) float32 unit rows
    row = {item.item_id: n for n, item in enumerate(dataset.items)}
    ids = [item.item_id for item in dataset.items]
    weights, decay, interests = settings.event_weights(), settings.decay(), settings.interests()
    stored: dict[str, bytes] = {}
    exact: dict[str, np.ndarray] = {}  # user -> (D,) float32 vector, never serialised
    interactions = dataset.interactions[:limit] if limit else dataset.interactions
    for n, x in enumerate(interactions):
        raw = stored.get(x.user_id)
        state = UserState.from_bytes(raw) if raw else UserState.empty(encoder.dim, encoder.version)
        w = weights.weight(x.type, x.rating)
        v = vectors[row[x.item_id]]  # (D,)
        merged = merge_event(state, v, w, x.ts_ms, decay, interests, event_id=f"{x.user_id}-{n}",
                             item_id=x.item_id, vector_of=lambda i: vectors[row[i]] if i in row else None)
        shown = tuple(ids[(row[x.item_id] + 1 + j) % len(ids)] for j in range(SHOWN))
        stored[x.user_id] = merged.to_bytes(shown)
        free = UserState(vector=exact.get(x.user_id, np.zeros(encoder.dim, np.float32)),
                         updated_ms=state.updated_ms, events=state.events, weight_sum=state.weight_sum)
        exact[x.user_id] = decay_merge(free, v, w, x.ts_ms, decay).vector
    sizes = np.array([len(b) for b in stored.values()], dtype=np.float64)  # (U,)
    states = {u: UserState.from_bytes(b) for u, b in stored.items()}
    cosines = np.array([_cosine(states[u].vector, exact[u]) for u in states])  # (U,)
    per_interest = [_interest_bytes(k) for s in states.values() for k in s.interests]
    counts = np.array([len(s.interests) for s in states.values()])  # (U,)
    parts = {"interests": float(np.mean([sum(map(_interest_bytes, s.interests)) for s in states.values()])),
             "history": _strings(s.history for s in states.values()),
             "seen": _strings(s.seen for s in states.values()),
             "shown": _strings(s.shown for s in states.values()),
             "space": _strings((s.space,) for s in states.values())}
    parts["header"] = float(sizes.mean()) - sum(parts.values())
    return {
        "users": len(stored),
        "events": len(interactions),
        "bytes_per_user": round(float(sizes.mean()), 1),
        "bytes_per_user_p50": float(np.percentile(sizes, 50)),
        "bytes_per_user_p99": float(np.percentile(sizes, 99)),
        "bytes_per_user_max": float(sizes.max()),
        "bytes_per_interest": round(float(np.mean(per_interest)), 1),
        "bytes_per_interest_vector": 2 * encoder.dim,
        "interests_per_user": round(float(counts.mean()), 2),
        "interests_per_user_histogram": np.bincount(counts).tolist(),
        "max_interests": interests.max_interests,
        "mean_bytes_by_part": {k: round(v, 1) for k, v in parts.items()},
        "float16_cosine_to_float32": {"min": round(float(cosines.min()), 7),
                                      "mean": round(float(cosines.mean()), 7)},
        "history_size": decay.history_size,
        "seen_size": decay.seen_size,
        "encoder": encoder.version,
        "wall_s": round(time.monotonic() - started, 1),
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else 1.0


def _interest_bytes(k: Any) -> int:
    """One stored interest: weight sum, activity, item count (13 bytes), the float16 vector and
    its representative item ids."""
    return 13 + 2 * k.vector.shape[0] + sum(2 + len(i.encode("utf-8")) for i in k.items)


def _strings(groups: Any) -> float:
    """Mean encoded bytes of string lists: u16 length + UTF-8 each."""
    sizes = [sum(2 + len(t.encode("utf-8")) for t in g) for g in groups]
    return float(np.mean(sizes)) if sizes else 0.0


def print_table(report: dict[str, Any]) -> None:
    print(f"{report['users']} users after {report['events']} events "
          f"(history kept: {report['history_size']} items, seen: {report['seen_size']} event ids)")
    print(f"bytes per user: mean {report['bytes_per_user']:.0f}, p50 {report['bytes_per_user_p50']:.0f}, "
          f"p99 {report['bytes_per_user_p99']:.0f}, max {report['bytes_per_user_max']:.0f}")
    print(f"interests per user: mean {report['interests_per_user']} (K = {report['max_interests']}; "
          f"users with 0, 1, 2, ...: {report['interests_per_user_histogram']})")
    print(f"bytes per interest: {report['bytes_per_interest']:.0f} "
          f"(its float16 vector {report['bytes_per_interest_vector']}, its weight, activity and items)")
    for part, size in report["mean_bytes_by_part"].items():
        print(f"  {part:<8} {size:8.1f} B")
    c = report["float16_cosine_to_float32"]
    print(f"float16 storage vs float32 in memory, cosine: min {c['min']:.7f}, mean {c['mean']:.7f}")
