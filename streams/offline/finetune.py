"""`interests finetune`: which events train the encoder, so that `interests eval` never scores
a target the encoder has seen.

  prequential   train on events before the time cutoff (the `train_fraction` quantile of event
                times); `interests eval --encoder FOLDER` then scores only events from the cutoff
                on, and `--score-from FRACTION` gives any other encoder the same window.
  loo           train on everything but each user's last two events (the leave-one-out test and
                validation targets).

Validation pairs are the latest training-side pairs (the last 5% before the cutoff, or each
user's last training event for loo); they are kept out of the training pairs.

Items are held out as well as time: a seeded share of the catalog (`held_out_items`) is never a
training target (nor a hard negative); the training-side pairs that end on one of them are the
item validation set, which chooses the step `finetune` keeps: the model is for items it was not
tuned on (the cold items of the catalog, the new ones of tomorrow).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from encoders import item_document
from encoders.contrastive import Pair
from streams.offline.datasets import Dataset, Interaction
from streams.offline.evaluation import Protocol

VALIDATION_SHARE = 0.05


def time_cutoff(interactions: Sequence[Interaction], fraction: float) -> int:
    """The event time (ms) below which `fraction` of the events lie."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("the training fraction must be between 0 and 1")
    ts = np.sort(np.fromiter((x.ts_ms for x in interactions), dtype=np.int64))  # (E,) ms
    return int(ts[min(len(ts) - 1, int(fraction * len(ts)))])


@dataclass(frozen=True)
class Split:
    train: list[Pair]
    validation: list[Pair]  # later pairs, targets not held out
    metadata: dict[str, Any]
    validation_items: list[Pair] = field(default_factory=list)  # pairs ending on a held-out item
    held_out: frozenset[int] = frozenset()  # item indices never trained on as targets


def user_sequences(interactions: Sequence[Interaction], index: dict[str, int]
                   ) -> dict[str, list[tuple[int, int]]]:
    """user -> [(item index, ts_ms)] in event order; items outside the catalog are skipped."""
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for x in interactions:
        if x.item_id in index:
            out[x.user_id].append((index[x.item_id], x.ts_ms))
    return out


def pairs_of(sequence: Sequence[tuple[int, int]], history: int) -> list[tuple[Pair, int]]:
    """Every (last `history` items -> next item) pair of one user, with the target's time."""
    items = [item for item, _ in sequence]
    return [(Pair(tuple(items[max(0, p - history) : p]), items[p]), sequence[p][1])
            for p in range(1, len(items))]


def split(dataset: Dataset, protocol: Protocol, train_fraction: float = 0.5, history: int = 5,
          held_out_items: float = 0.1, seed: int = 7) -> Split:
    index = {item.item_id: n for n, item in enumerate(dataset.items)}
    sequences = user_sequences(dataset.interactions, index)
    rng = np.random.default_rng(seed)
    held = frozenset(int(i) for i in rng.choice(len(index), int(held_out_items * len(index)), replace=False))
    meta: dict[str, Any] = {"dataset": dataset.name, "protocol": protocol, "history": history,
                            "held_out_items": len(held), "held_out_seed": seed}
    if protocol == "prequential":
        cutoff = time_cutoff(dataset.interactions, train_fraction)
        meta |= {"train_fraction": train_fraction, "cutoff_ms": cutoff}
        timed = [pt for seq in sequences.values()
                 for pt in pairs_of([(i, t) for i, t in seq if t < cutoff], history)]
        timed.sort(key=lambda pt: pt[1])
        n_valid = max(1, int(VALIDATION_SHARE * len(timed)))
        train = [p for p, _ in timed[:-n_valid]]
        validation = [p for p, _ in timed[-n_valid:]]
    else:
        train, validation = [], []
        for seq in sequences.values():
            pairs = [p for p, _ in pairs_of(seq[:-2], history)]  # the last two are loo's targets
            train.extend(pairs[:-1])
            validation.extend(pairs[-1:])
        meta["held_out_last"] = 2
    return Split([p for p in train if p.target not in held],
                 [p for p in validation if p.target not in held], meta,
                 [p for p in train + validation if p.target in held], held)


def documents(dataset: Dataset) -> list[str]:
    return [item_document(i.title, i.text, i.tags) for i in dataset.items]


def read_metadata(folder: str | Path) -> dict[str, Any] | None:
    """A fine-tuned folder's `finetune.json`; None for any other model folder."""
    path = Path(folder) / "finetune.json"
    return json.loads(path.read_text()) if path.is_file() else None


def scored_from(meta: dict[str, Any] | None, dataset: Dataset, protocol: Protocol) -> int | None:
    """The first event time `interests eval` may score with an encoder fine-tuned as `meta`
    says; raises when the encoder saw this protocol's test targets."""
    if meta is None or meta.get("dataset") != dataset.name:
        return None
    if protocol == "loo":
        if meta.get("protocol") != "loo":
            raise ValueError("this encoder was fine-tuned on events that leave-one-out tests on; "
                             "fine-tune it with --protocol loo")
        return None
    if meta.get("protocol") != "prequential":
        raise ValueError("this encoder was fine-tuned for leave-one-out (it saw events from the whole "
                         "time range); fine-tune it with --protocol prequential")
    return int(meta["cutoff_ms"])
