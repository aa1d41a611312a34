"""`interests train-cf`: the factor model and the hybrid's blend, trained from a data set or from
the event log on the broker, written as one versioned artifact folder that workers load
(INTERESTS_CF_MODEL).

Each user's last interaction is held out as a validation target; everything else is replayed
through the same signals a worker keeps and the factor model (and the sequential model, which
holds out each user's last remaining item for its own early stopping) is trained on it; the blend
is fitted on the validation targets; then both models are retrained on everything (the
sequential one from where it stopped) and saved with the blend. The held-out targets never train
the models the blend was fitted with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from cf.artifact import CFArtifact
from cf.decay import DecayConfig
from cf.factors import ALSParams
from cf.interests import InterestConfig
from cf.neighbours import CoocConfig
from cf.sequence import SequenceModel
from cf.sequence_train import SeqParams
from cf.weights import EventWeights
from streams.offline.datasets import CatalogItem, Dataset, Interaction
from streams.offline.evaluation import DEFAULT_SEQ, Replay, held_out, validate
from streams.ops.topic_reader import read_from_beginning
from streams.records import Invalid, parse_event, parse_item_vector
from streams.settings import Settings

F32 = npt.NDArray[np.float32]


def train_cf(dataset: Dataset, vectors: F32, space: str, weights: EventWeights, decay: DecayConfig,
             params: ALSParams, k: int = 10, progress: bool = True,
             cooc: CoocConfig | None = None, interests: InterestConfig | None = None,
             sequence: SeqParams | None = DEFAULT_SEQ, checkpoints: Path | None = None) -> CFArtifact:
    """checkpoints: a folder where each better sequential model is written while it trains."""
    started = time.monotonic()
    replay = Replay(dataset, vectors, weights, decay, space, k, params, cooc=cooc, interests=interests,
                    sequence=sequence)
    bar = tqdm(desc="train-seq", unit="epoch", disable=not progress or sequence is None)

    def epoch_done(entry: dict[str, float]) -> None:
        bar.update()
        bar.set_postfix(loss=entry["loss"], val_ndcg=entry["val_ndcg"])

    def better(model: SequenceModel) -> None:
        if checkpoints is not None:
            model.save(checkpoints)

    replay.sequence_progress, replay.sequence_checkpoint = epoch_done, better
    events = replay.known(dataset.interactions)
    if not events:
        raise ValueError(f"{dataset.name}: no interactions with catalog items to train on")
    (valid,) = held_out(events, 1)
    with threadpool_limits(1, user_api="blas"):
        for n, (x, target) in enumerate(tqdm(events, desc="train-cf", unit="ev",
                                             disable=not progress, mininterval=1.0)):
            if n not in valid:
                replay.update(x, target)
        replay.retrain()
        validation = validate(replay, events, valid) if valid else {}
        replay.retrain()  # on everything, validation targets included
    bar.close()
    model = replay.signals.model
    assert model is not None
    report = {
        "dataset": dataset.name, "events": len(events), "users": len(replay.signals.histories),
        "items": len(model.item_ids), "validation_cases": len(valid), "params": asdict(params),
        "validation": validation, "fits": replay.fits,
        "sequence_params": None if sequence is None else asdict(sequence),
        "sequence_fits": replay.sequence_fits,
        "wall_s": round(time.monotonic() - started, 1),
    }
    return CFArtifact(model, replay.policy, report, replay.signals.sequence)


def event_log(settings: Settings, space: str, idle_ms: int = 3000,
              say: Callable[[str], None] = print) -> tuple[Dataset, F32]:
    """The catalog (with its vectors, as workers embedded them) and every valid item event,
    read from the broker's item-vectors and events topics, in event-time order."""
    vectors: dict[str, tuple[str, F32]] = {}
    reader = read_from_beginning(settings, "item-vectors", consumer_timeout_ms=idle_ms)
    for record in reader:
        item_id = record.key.decode("utf-8") if record.key else None
        if item_id is None:
            continue
        if record.value is None:
            vectors.pop(item_id, None)
            continue
        parsed = parse_item_vector(record.value)
        if parsed.space == space:
            vectors[parsed.item_id] = (parsed.title, parsed.vector)
    reader.close()
    interactions = []
    reader = read_from_beginning(settings, "events", consumer_timeout_ms=idle_ms)
    for record in reader:
        try:
            e = parse_event(record.key, record.value, max_text_chars=settings.max_text_chars)
        except Invalid:
            continue  # the workers sent it to the dead-letter topic
        if e.item_id is not None and e.item_id in vectors:
            interactions.append(Interaction(e.user_id, e.item_id, e.ts, e.rating, e.type))
    reader.close()
    interactions.sort(key=lambda x: x.ts_ms)
    say(f"event log: {len(vectors)} items ({space}), {len(interactions)} item events")
    ids = list(vectors)
    items = [CatalogItem(i, vectors[i][0]) for i in ids]
    matrix = (np.stack([vectors[i][1] for i in ids]).astype(np.float32) if ids
              else np.zeros((0, 0), np.float32))
    return Dataset("event-log", items, interactions), matrix


def summary(artifact: CFArtifact, folder: Path) -> str:
    r = artifact.report
    lines = [f"cf model {artifact.model.version}: {r['items']} items, {r['users']} users, "
             f"{r['events']} events, {r['validation_cases']} validation targets ({r['wall_s']} s)",
             f"written to {folder}"]
    validation = r.get("validation") or {}
    assert isinstance(validation, dict)
    for name, m in validation.items():
        label = "hybrid (prior blend)" if name == "hybrid" else name
        lines.append(f"  validation {label:<22} HR@10 {m['hr']:.4f}  NDCG@10 {m['ndcg']:.4f}")
    fits = r.get("fits") or [{}]
    assert isinstance(fits, list)
    for bucket in fits[-1].get("buckets", []):
        lines.append(f"  fitted blend, history bucket {bucket['bucket']}: {bucket['cases']} cases, "
                     f"NDCG@10 {bucket['validation_ndcg']}")
    sequence_fits = r.get("sequence_fits") or []
    assert isinstance(sequence_fits, list)
    for fit in sequence_fits:
        lines.append(f"  seq model {fit['version']}: best epoch {fit['best_epoch']} of {len(fit['epochs'])}, "
                     f"validation NDCG@10 {fit['best_ndcg']} (each user's last training item)")
    lines.append("blend by history length: " + json.dumps(artifact.policy.to_json()))
    return "\n".join(lines)
