"""`interests bench encoder`: sentences/s of every encoder backend, side by side, and how close
their vectors are to the reference (torch fp32).

Texts: "short" are MovieLens item documents ("Title (year). Genre, Genre", ~12 tokens); "long" join
eight of them (~100 tokens, near the 128-token cut). For each (texts, batch) the backends take turns,
`rounds` times, each round on texts none of them has seen in that round; the row reports the
median round. No text cache is in front: the cache would measure the cache.

`--encoder FOLDER` (or all-mpnet-base-v2) measures that model beside the packaged
all-MiniLM-L6-v2, in the same run; each model's speedups are against its own torch fp32, and
`catalog` gives the seconds each (model, backend) takes to embed every short document once, in
calls of the worker's embed batch (what a worker's first start on a catalog costs).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from encoders import Encoder, item_document
from encoders.loading import BACKENDS
from streams.encoder_setup import open_encoder
from streams.offline.datasets import DocumentSource, load_dataset
from streams.settings import Settings

REFERENCE = "torch-fp32"
BATCHES = (1, 8, 32, 128)


@dataclass(frozen=True)
class TextSets:
    short: list[str]
    long: list[str]


def text_sets(dataset: str = "ml-100k", documents: DocumentSource = "titles", seed: int = 7) -> TextSets:
    docs = [item_document(i.title, i.text, i.tags) for i in load_dataset(dataset, documents).items]
    rng = random.Random(seed)
    rng.shuffle(docs)
    long = [" ".join(rng.sample(docs, 8)) for _ in range(len(docs) // 2)]
    return TextSets(short=docs, long=long)


def rate(encode: Callable[[Sequence[str]], Any], texts: Sequence[str], batch: int) -> float:
    """Sentences/s for encoding `texts` in calls of `batch` texts each."""
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        encode(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def texts_per_round(batch: int, kind: str) -> int:
    """Enough texts for a stable timing, not so many that torch at batch 1 takes minutes."""
    base = 24 if batch == 1 else max(4 * batch, 128)
    return base if kind == "short" else max(batch, base // 3)


def cosines(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Mean and minimum of row-wise cosine between two (N, D) arrays of unit rows."""
    cos = np.einsum("nd,nd->n", reference, other)  # (N,)
    return float(cos.mean()), float(cos.min())


def run_bench(settings: Settings, backends: Sequence[str] = BACKENDS, batches: Sequence[int] = BATCHES,
              rounds: int = 3, texts: TextSets | None = None, model: str | None = None,
              progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    sets = texts or text_sets()
    models = [None] if model in (None, "") else ["", model]
    rows: list[dict[str, Any]] = []
    catalog: list[dict[str, Any]] = []
    tokens: dict[str, dict[str, float]] = {}
    for name in models:
        encoders = {b: open_encoder(settings, name, b, cache_texts=0) for b in backends}
        label = next(iter(encoders.values())).version.split("@")[0]
        found = _rows(encoders, sets, batches, rounds, progress, label)
        rows.extend({"model": label, **r} for r in found)
        tokens[label] = _token_counts(encoders, sets)
        for backend, encoder in encoders.items():
            started = time.perf_counter()
            for start in range(0, len(sets.short), settings.embed_batch):
                encoder.encode(sets.short[start : start + settings.embed_batch])
            catalog.append({"model": label, "backend": backend, "documents": len(sets.short),
                            "seconds": time.perf_counter() - started})
            progress(f"{label} {backend}: catalog of {len(sets.short)} in {catalog[-1]['seconds']:.2f} s")
    return {"rows": rows, "catalog": catalog, "threads": settings.encoder_threads,
            "embed_batch": settings.embed_batch, "tokens": tokens[rows[0]["model"]],
            "tokens_by_model": tokens}


def _rows(encoders: dict[str, Encoder], sets: TextSets, batches: Sequence[int], rounds: int,
          progress: Callable[[str], None], label: str) -> list[dict[str, Any]]:
    quality: dict[tuple[str, str], tuple[float, float] | None] = {}  # None: no reference in the run
    for kind in ("short", "long"):
        fixed = getattr(sets, kind)[:256]
        reference = encoders[REFERENCE].encode(fixed) if REFERENCE in encoders else None
        for name, encoder in encoders.items():
            encoder.encode(fixed[:8])  # warm-up: first-call allocations
            quality[(name, kind)] = (cosines(reference, encoder.encode(fixed))
                                     if reference is not None else None)
    rows: list[dict[str, Any]] = []
    tokenizer = getattr(next(iter(encoders.values())), "tokenizer", None)
    for kind in ("short", "long"):
        pool = getattr(sets, kind)
        for batch in batches:
            n = texts_per_round(batch, kind)
            samples: dict[str, list[float]] = {name: [] for name in encoders}
            tokenized: list[float] = []
            for r in range(rounds):
                chunk = [pool[(r * n + i) % len(pool)] for i in range(n)]
                for name, encoder in encoders.items():
                    samples[name].append(rate(encoder.encode, chunk, batch))
                if tokenizer is not None:
                    tokenized.append(rate(lambda t: tokenizer(list(t), padding=True, truncation=True,
                                                              max_length=128, return_tensors="np"),
                                          chunk, batch))
            for name in encoders:
                cos = quality[(name, kind)]
                per_s = statistics.median(samples[name])
                rows.append({"backend": name, "texts": kind, "batch": batch,
                             "sent_per_s": round(per_s, 1),
                             # share of the encode call spent tokenising (the rest: the model)
                             "tokenize_share": round(per_s / statistics.median(tokenized), 3)
                             if tokenized else None,
                             "cos_mean": round(cos[0], 5) if cos else None,
                             "cos_min": round(cos[1], 5) if cos else None,
                             "version": encoders[name].version, "rounds": rounds, "texts_per_round": n})
            progress(f"{label} {kind} batch {batch}: " + ", ".join(
                f"{name} {statistics.median(s):.0f}/s" for name, s in samples.items()))
    _add_speedups(rows)
    return rows


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """Each row's sentences/s over the reference's in the same (texts, batch) cell."""
    ref = {(r["texts"], r["batch"]): r["sent_per_s"] for r in rows if r["backend"] == REFERENCE}
    for r in rows:
        base = ref.get((r["texts"], r["batch"]))
        r["speedup"] = round(r["sent_per_s"] / base, 2) if base else None


def _token_counts(encoders: dict[str, Encoder], sets: TextSets) -> dict[str, float]:
    tokenizer = getattr(next(iter(encoders.values())), "tokenizer", None)
    if tokenizer is None:
        return {}
    counts = {kind: [len(ids) for ids in tokenizer(getattr(sets, kind)[:256], truncation=True,
                                                    max_length=128)["input_ids"]]
              for kind in ("short", "long")}
    return {kind: float(np.mean(n)) for kind, n in counts.items()}


def table(report: dict[str, Any]) -> str:
    lines = [f"encoder backends, sentences/s (median of {report['rows'][0]['rounds']} rounds); "
             f"tokens per text: {report['tokens_by_model']}",
             f"{'model':<20}{'backend':<12}{'texts':<7}{'batch':>6}{'sent/s':>10}{'x fp32':>8}"
             f"{'cos mean':>10}{'cos min':>9}{'tok %':>7}"]
    for r in report["rows"]:
        speedup = f"{r['speedup']:.2f}" if r["speedup"] is not None else "-"
        lines.append(f"{r['model']:<20}{r['backend']:<12}{r['texts']:<7}{r['batch']:>6}"
                     f"{r['sent_per_s']:>10.1f}{speedup:>8}"
                     f"{r['cos_mean'] if r['cos_mean'] is not None else float('nan'):>10.4f}"
                     f"{r['cos_min'] if r['cos_min'] is not None else float('nan'):>9.4f}"
                     f"{100 * r['tokenize_share'] if r['tokenize_share'] is not None else 0:>7.1f}")
    lines.append("catalog embedding, seconds: " + ", ".join(
        f"{c['model']} {c['backend']} {c['seconds']:.2f}" for c in report["catalog"]))
    return "\n".join(lines)
