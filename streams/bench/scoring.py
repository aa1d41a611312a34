"""`interests bench scoring`: top-10 by inner product over catalogs of 10k to 1M items, exact
(one matrix product per batch of users) against faiss's inverted-file index, recall@10 measured
against exact.

Catalog: the MovieLens-100k item vectors (the default encoder) serve as topics; each synthetic
item mixes a main topic with a random second one (up to half way) plus Gaussian noise,
re-normalised, so items cluster the way real embeddings do but also lie between clusters, which
is what makes an inverted-file index miss. Users: the unit mean of 20 items drawn from two topics' items,
the shape of a decayed interest vector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from streams.encoder_setup import open_encoder
from streams.offline.datasets import load_dataset
from streams.offline.evaluation import item_vectors
from streams.settings import Settings

F32 = npt.NDArray[np.float32]
K = 10
USERS = 256
BATCH = 64  # users per scoring call, as the worker scores a batch's users together
NOISE = 0.75  # |noise| / |topic| before re-normalising: cosine to the topic ~ 1 / sqrt(1 + NOISE^2)


def synthetic(topics: F32, n: int, users: int, seed: int = 0) -> tuple[F32, F32]:
    """(n, D) unit item vectors around the topics, (users, D) unit user vectors."""
    rng = np.random.default_rng(seed)
    d = topics.shape[1]
    topic_of = rng.integers(0, len(topics), n)  # (n,) main topic
    second = rng.integers(0, len(topics), n)  # (n,) a second topic each item leans toward
    lean = rng.uniform(0.0, 0.5, n).astype(np.float32)[:, None]  # (n, 1) how far
    items = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):  # bounded temporaries at 1M items
        rows = slice(start, min(n, start + 100_000))
        noise = rng.standard_normal((rows.stop - rows.start, d)).astype(np.float32) * (NOISE / np.sqrt(d))
        # x = (1 - a) t_main + a t_second + noise, a in [0, 0.5): items between topics, not on them
        block = (1 - lean[rows]) * topics[topic_of[rows]] + lean[rows] * topics[second[rows]] + noise
        items[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)  # (b, D)
    by_topic: dict[int, npt.NDArray[np.intp]] = {}
    queries = np.empty((users, d), dtype=np.float32)
    for u in range(users):
        picked = []
        for t in rng.choice(len(topics), 2, replace=False):
            pool = by_topic.setdefault(int(t), np.flatnonzero(topic_of == t))
            if len(pool):
                picked.append(rng.choice(pool, 10))
        q = items[np.concatenate(picked)].sum(axis=0) if picked else items[rng.integers(0, n)]
        queries[u] = q / np.linalg.norm(q)
    return items, queries


def exact_top_k(items: F32, queries: F32, k: int = K) -> npt.NDArray[np.intp]:
    """(B, D) queries against (N, D) items -> (B, k) rows of the k highest inner products."""
    scores = queries @ items.T  # (B, N)
    top = np.argpartition(-scores, k, axis=1)[:, :k]  # (B, k), unordered
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def ivf_top_k(index: Any, queries: F32, k: int = K) -> npt.NDArray[np.intp]:
    """(B, D) queries -> (B, k) rows from a faiss index (its own order: best first)."""
    return np.asarray(index.search(queries, k)[1], dtype=np.intp)


def timed(search: Callable[[F32], npt.NDArray[np.intp]], queries: F32) -> tuple[float, npt.NDArray[np.intp]]:
    """ms per user, searching in batches of BATCH users; the rows found."""
    out = []
    started = time.perf_counter()
    for start in range(0, len(queries), BATCH):
        out.append(search(queries[start : start + BATCH]))
    return (time.perf_counter() - started) * 1000 / len(queries), np.concatenate(out)


def recall(found: npt.NDArray[np.intp], truth: npt.NDArray[np.intp]) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def run_bench(settings: Settings, sizes: Sequence[int], nprobes: Sequence[int] = (8, 16, 32, 64),
              threads: int = 2, progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    import faiss

    encoder = open_encoder(settings, cache_texts=0)
    topics = item_vectors(encoder, load_dataset("ml-100k"))  # (T, D)
    rows: list[dict[str, Any]] = []
    faiss.omp_set_num_threads(threads)
    with threadpool_limits(threads, user_api="blas"):
        for n in sizes:
            items, queries = synthetic(topics, n, USERS)
            exact_ms, truth = timed(partial(exact_top_k, items), queries)
            rows.append({"items": n, "method": "exact", "ms_per_user": round(exact_ms, 3),
                         "recall_at_10": 1.0, "build_s": 0.0})
            progress(f"{n} items: exact {exact_ms:.2f} ms/user")
            # inverted lists: ~4 sqrt(N) k-means cells; a query scans the `nprobe` nearest cells
            cells = int(4 * np.sqrt(n))
            started = time.perf_counter()
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(items.shape[1]), items.shape[1], cells,
                                       faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(1).choice(n, min(n, 40 * cells), replace=False)
            index.train(items[sample])
            index.add(items)
            build_s = time.perf_counter() - started
            for nprobe in nprobes:
                index.nprobe = nprobe
                ms, found = timed(partial(ivf_top_k, index), queries)
                rows.append({"items": n, "method": f"faiss-ivf{cells}-nprobe{nprobe}",
                             "ms_per_user": round(ms, 3), "recall_at_10": round(recall(found, truth), 4),
                             "build_s": round(build_s, 1)})
                progress(f"{n} items: ivf nprobe {nprobe} {ms:.3f} ms/user, "
                         f"recall {rows[-1]['recall_at_10']}")
            del items, index
    return {"rows": rows, "users": USERS, "batch": BATCH, "threads": threads, "encoder": encoder.version}


def table(report: dict[str, Any]) -> str:
    lines = [f"top-{K} per user, {report['users']} users in batches of {report['batch']}, "
             f"{report['threads']} threads",
             f"{'items':>9}  {'method':<28}{'ms/user':>9}{'recall@10':>11}{'build s':>9}"]
    lines += [f"{r['items']:>9}  {r['method']:<28}{r['ms_per_user']:>9.3f}{r['recall_at_10']:>11.4f}"
              f"{r['build_s']:>9.1f}" for r in report["rows"]]
    return "\n".join(lines)
