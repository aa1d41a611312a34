"""Fine-tune the text encoder on interactions: a user's recent items should embed near the next one.

Each training pair is (the texts of a user's last H items, the text of the item that came next).
The query is the unit mean of the history's sentence vectors, which is what the engine's interest
vector is (a decayed sum of item vectors, compared by cosine). With in-batch negatives (van den
Oord et al. 2018; Henderson et al. 2017), for a batch of B pairs:

    s_ij = <q_i, t_j> / tau                      q_i, t_j unit vectors, tau the temperature
    L    = -1/B sum_i log( exp(s_ii) / sum_j exp(s_ij) )

where a j != i whose target is the same item as i's is masked out (it is not a negative).
In-batch negatives are drawn as often as items are consumed, which would teach the model to push
popular items away; the logQ correction (Yi et al. 2019) subtracts log p_j, item j's share of
the training targets, from s_ij for j != i.

On a CPU the step's cost is the number of texts it back-propagates through, so only the targets
(B texts) go through the model with gradients; the history vectors come from a bank of every
item's vector (N, D), refreshed in full at each validation and row by row as items are embedded
as targets (a memory bank, Wu et al. 2018). Items are targets of other pairs, so both sides learn.

LoRA (Hu et al. 2021, via `peft`) trains rank-r updates of every attention and feed-forward
projection; `full` trains all weights. Either way the saved folder is a plain Hugging Face model
folder (LoRA merged in), which every backend loads and the ONNX export traces.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from encoders.model_folder import folder_version, load_tokenizer, resolve_model_folder
from encoders.pooling import SentenceModel

Method = Literal["lora", "full"]
CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class Pair:
    history: tuple[int, ...]  # item indices of the user's latest items, oldest first
    target: int  # the item consumed next


@dataclass(frozen=True)
class TuneParams:
    method: Method = "lora"
    steps: int = 500
    batch: int = 64  # pairs per step; the other B - 1 targets are the negatives
    lr: float = 0.0  # 0 = the method's default: 1e-3 for LoRA, 5e-5 for full
    warmup: float = 0.1  # share of steps the learning rate ramps up linearly, then cosine decay
    temperature: float = 0.05
    lora_rank: int = 8
    lora_alpha: int = 16
    max_length: int = 64  # tokens per item text
    seed: int = 7
    checkpoint_every: int = 100
    validation_pairs: int = 5000
    log_q: bool = True  # correct in-batch negatives for popularity

    def learning_rate(self) -> float:
        return self.lr or (1e-3 if self.method == "lora" else 5e-5)


def lora_targets(model: torch.nn.Module) -> list[str]:
    """The names of the model's linear layers (BERT: query, key, value, dense; MPNet: q, k, v, o,
    dense): LoRA adapts every projection, whatever the architecture calls them."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear)})


def info_nce(query: torch.Tensor, target: torch.Tensor, target_ids: torch.Tensor,
             temperature: float, log_q: torch.Tensor | None = None) -> torch.Tensor:
    """(B, D) unit queries, (B, D) unit targets, (B,) target item ids, (B,) log p of each
    target as a negative (None = no correction) -> scalar loss."""
    logits = query @ target.T / temperature  # (B, B)
    if log_q is not None:
        off = ~torch.eye(len(target_ids), dtype=torch.bool)  # (B, B)
        logits = logits - off * log_q[None, :]  # s_ij - log p_j for j != i
    same = target_ids[:, None] == target_ids[None, :]  # (B, B)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))  # a repeated target is not a negative
    return torch.nn.functional.cross_entropy(logits, torch.arange(query.shape[0]))


def queries_from(vectors: torch.Tensor, rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """(U, D) unit item vectors, B lists of row indices -> (B, D): the unit mean of each list."""
    index = torch.tensor([r for row in rows for r in row])  # (sum len,)
    owner = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor([len(r) for r in rows]))
    sums = torch.zeros(len(rows), vectors.shape[1], dtype=vectors.dtype).index_add(0, owner, vectors[index])
    return torch.nn.functional.normalize(sums, dim=1)  # (B, D)


def learning_rate_at(step: int, params: TuneParams) -> float:
    """Linear warm-up to the peak, then a half cosine to zero."""
    peak = params.learning_rate()
    warm = max(1, int(params.warmup * params.steps))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, params.steps - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Batches:
    """The pairs in a seeded random order, epoch after epoch; batch `n` is the same on a rerun,
    so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, pairs: Sequence[Pair], size: int, seed: int) -> None:
        self.pairs, self.size, self.seed = pairs, min(size, len(pairs)), seed
        self.per_epoch = len(pairs) // self.size

    def __getitem__(self, n: int) -> list[Pair]:
        epoch, offset = divmod(n, self.per_epoch)
        order = list(range(len(self.pairs)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return [self.pairs[i] for i in order[offset * self.size : (offset + 1) * self.size]]


class Trainer:
    def __init__(self, base: str, documents: Sequence[str], params: TuneParams,
                 targets: Sequence[int] = ()) -> None:
        from transformers import AutoModel

        torch.manual_seed(params.seed)
        self.params = params
        self.folder = resolve_model_folder(base)
        self.base_version = folder_version(self.folder)
        self.tokenizer = load_tokenizer(self.folder)
        self.tokens: list[list[int]] = self.tokenizer(
            list(documents), truncation=True, max_length=params.max_length)["input_ids"]
        model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
        if params.method == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(
                r=params.lora_rank, lora_alpha=params.lora_alpha, lora_dropout=0.0,
                target_modules=lora_targets(model), bias="none"))
        self.model = model
        self.sentence = SentenceModel(model)
        self.trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.AdamW(self.trainable.values(), lr=params.learning_rate(),
                                           weight_decay=0.01)
        self.bank = torch.zeros(len(self.tokens), int(model.config.hidden_size))  # (N, D), see refresh_bank
        counts = torch.bincount(torch.tensor(list(targets), dtype=torch.long), minlength=len(self.tokens))
        self.log_q = torch.log((counts.float() + 1.0) / (counts.sum() + len(self.tokens)))  # (N,) log p

    def embed(self, items: Sequence[int]) -> torch.Tensor:
        """(U,) item indices -> (U, D) unit vectors (with gradients when training)."""
        pad = self.tokenizer.pad({"input_ids": [self.tokens[i] for i in items]}, return_tensors="pt")
        return self.sentence(pad["input_ids"], pad["attention_mask"])  # (U, D)

    def step(self, pairs: Sequence[Pair], n: int) -> float:
        self.model.train()
        items = sorted({p.target for p in pairs})
        row = {item: r for r, item in enumerate(items)}
        vectors = self.embed(items)  # (U, D), with gradients
        query = queries_from(self.bank, [p.history for p in pairs])  # (B, D), from the bank
        target = vectors[[row[p.target] for p in pairs]]  # (B, D)
        ids = torch.tensor([p.target for p in pairs])  # (B,)
        loss = info_nce(query, target, ids, self.params.temperature,
                        self.log_q[ids] if self.params.log_q else None)
        self.bank[items] = vectors.detach()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(n, self.params)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable.values(), 1.0)
        self.optimizer.step()
        return float(loss.detach())

    @torch.inference_mode()
    def catalog(self, batch: int = 128) -> npt.NDArray[np.float32]:
        """(N, D) every item's vector under the current weights."""
        self.model.eval()
        n = len(self.tokens)
        order = sorted(range(n), key=lambda i: len(self.tokens[i]))  # little padding
        out = np.empty((n, int(self.model.config.hidden_size)), dtype=np.float32)
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            out[rows] = self.embed(rows).numpy()
        return out

    def refresh_bank(self) -> npt.NDArray[np.float32]:
        """Every item's vector under the current weights, into the bank; (N, D)."""
        items = self.catalog()  # (N, D)
        self.bank = torch.from_numpy(items.copy())
        return items

    def validate(self, pairs: Sequence[Pair], k: int = 10) -> float:
        """HR@k of the next item among all items, ranked by cosine to the history's unit mean
        (the history's own items excluded), over the validation pairs; refreshes the bank."""
        items = self.refresh_bank()  # (N, D)
        hits = 0
        for p in pairs:
            query = items[list(p.history)].sum(axis=0)  # (D,)
            scores = items @ query  # (N,)
            scores[list(p.history)] = -np.inf
            hits += int((scores > scores[p.target]).sum() < k)
        return hits / max(len(pairs), 1)

    def save_checkpoint(self, folder: Path, step: int, log: list[dict[str, Any]]) -> None:
        """Trainable weights, optimizer moments and the RNG: a resumed run continues exactly."""
        target = folder / CHECKPOINT
        target.mkdir(parents=True, exist_ok=True)
        torch.save({"trainable": {n: p.detach().clone() for n, p in self.trainable.items()},
                    "optimizer": self.optimizer.state_dict(), "rng": torch.get_rng_state()},
                   target / "state.pt")
        (target / "state.json").write_text(json.dumps({"step": step, "log": log}))

    def load_checkpoint(self, folder: Path) -> tuple[int, list[dict[str, Any]]]:
        target = folder / CHECKPOINT
        if not (target / "state.json").is_file():
            return 0, []
        saved = torch.load(target / "state.pt", weights_only=True)  # tensors and plain values only
        with torch.no_grad():
            for name, value in saved["trainable"].items():
                self.trainable[name].copy_(value)
        self.optimizer.load_state_dict(saved["optimizer"])
        state = json.loads((target / "state.json").read_text())
        torch.set_rng_state(saved["rng"])  # dropout continues as if never stopped
        return int(state["step"]), list(state["log"])

    def save_model(self, folder: Path) -> None:
        model = self.model.merge_and_unload() if self.params.method == "lora" else self.model
        model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))


def finetune(
    base: str,
    documents: Sequence[str],
    train: Sequence[Pair],
    validation: Sequence[Pair],
    params: TuneParams,
    out: Path,
    metadata: dict[str, Any],
    resume: bool = False,
    progress: Callable[[int, float], None] = lambda step, loss: None,
) -> dict[str, Any]:
    """Train, validating at the start and every `checkpoint_every` steps; write a model folder
    to `out` with `finetune.json` (parameters, data split, validation curve, version)."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(base, documents, params, [p.target for p in train])
    rng = random.Random(params.seed)
    held = rng.sample(list(validation), min(params.validation_pairs, len(validation)))
    first, log = trainer.load_checkpoint(out) if resume else (0, [])
    if first == 0:
        log = [{"step": 0, "validation_hr10": trainer.validate(held)}]
    else:
        trainer.refresh_bank()  # the resumed weights' vectors (no randomness drawn)
    batches = Batches(train, params.batch, params.seed)
    losses: list[float] = []
    for n in range(first, params.steps):
        losses.append(trainer.step(batches[n], n))
        progress(n + 1, losses[-1])
        if (n + 1) % params.checkpoint_every == 0 or n + 1 == params.steps:
            log.append({"step": n + 1, "loss": float(np.mean(losses[-params.checkpoint_every :])),
                        "validation_hr10": trainer.validate(held)})
            trainer.save_checkpoint(out, n + 1, log)
    trainer.save_model(out)
    info = {
        "version": folder_version(out),
        **metadata,
        "base": trainer.base_version,
        "params": asdict(params),
        "train_pairs": len(train),
        "validation_pairs": len(held),
        "log": log,
        "wall_s": round(time.monotonic() - started, 1),
    }
    (out / "finetune.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
