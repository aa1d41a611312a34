"""`interests finetune`: which events train the encoder, so that `interests eval` never scores
a target the encoder has seen.

  prequential   train on events before the time cutoff (the `train_fraction` quantile of event
                times); `interests eval --encoder FOLDER` then scores only events from the cutoff
                on, and `--score-from FRACTION` gives any other encoder the same window.
  loo           train on everything but each user's last two events (the leave-one-out test and
                validation targets).

Validation pairs are the latest training-side pairs (the last 5% before the cutoff, or each
user's last training event for loo); they are kept out of the training pairs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
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
    validation: list[Pair]
    metadata: dict[str, Any]


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


def split(dataset: Dataset, protocol: Protocol, train_fraction: float = 0.5, history: int = 5) -> Split:
    index = {item.item_id: n for n, item in enumerate(dataset.items)}
    sequences = user_sequences(dataset.interactions, index)
    meta: dict[str, Any] = {"dataset": dataset.name, "protocol": protocol, "history": history}
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
    return Split(train, validation, meta)


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
