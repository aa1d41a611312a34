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

Hard negatives (`HardNegatives`; as in ANCE, Xiong et al. 2021, with a collaborative retriever in
place of the dense one): each pair also brings one item that co-occurrence over the training
pairs ranks high for its history but that is not its target, and every query of the batch is
contrasted with all B of them as well:
    L = -1/B sum_i log( exp(s_ii) / (sum_j exp(s_ij) + sum_m exp(<q_i, n_m> / tau)) )
so the text learns to tell apart what collaborative filtering already ranks together, which is
where it can add to the blend, instead of relearning the co-occurrence it will be blended with.

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
from collections.abc import Callable, Mapping, Sequence
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
    hard_negatives: bool = True  # one co-occurrence-ranked negative per pair, see HardNegatives
    hard_top: int = 20  # each pair's hard negative is drawn from its top this many
    keep: Literal["best", "last"] = "best"  # the weights written: best validated, or the last step

    def learning_rate(self) -> float:
        return self.lr or (1e-3 if self.method == "lora" else 5e-5)


def lora_targets(model: torch.nn.Module) -> list[str]:
    """The names of the model's linear layers (BERT: query, key, value, dense; MPNet: q, k, v, o,
    dense): LoRA adapts every projection, whatever the architecture calls them."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear)})


def info_nce(query: torch.Tensor, target: torch.Tensor, target_ids: torch.Tensor,
             temperature: float, log_q: torch.Tensor | None = None,
             negatives: torch.Tensor | None = None, negative_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B, D) unit queries, (B, D) unit targets, (B,) target item ids, (B,) log p of each
    target as a negative (None = no correction), optionally (M, D) unit hard negatives and their
    (M,) item ids, shared by every query -> scalar loss."""
    logits = query @ target.T / temperature  # (B, B)
    if log_q is not None:
        off = ~torch.eye(len(target_ids), dtype=torch.bool)  # (B, B)
        logits = logits - off * log_q[None, :]  # s_ij - log p_j for j != i
    same = target_ids[:, None] == target_ids[None, :]  # (B, B)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))  # a repeated target is not a negative
    if negatives is not None and negative_ids is not None:
        hard = query @ negatives.T / temperature  # (B, M)
        hard = hard.masked_fill(target_ids[:, None] == negative_ids[None, :], float("-inf"))  # (B, M)
        logits = torch.cat([logits, hard], dim=1)  # (B, B + M)
    return torch.nn.functional.cross_entropy(logits, torch.arange(query.shape[0]))


class HardNegatives:
    """Per training pair, the items co-occurrence over the training pairs ranks highest for its
    history, its own items and target excluded (and any `banned` item, e.g. held out):

        C[a, b] = sum over pairs (h_1..h_H -> t = b) with h_l = a of r^(H - l)
        s_p(n)  = sum_l r^(H - l) C[h_l, n] / sqrt(c_n)            c_n: n's count as a target

    (the newest history item, l = H, weighs 1). `draw` picks one of a pair's top `top` at random;
    a pair whose history co-occurs with nothing draws any allowed item."""

    def __init__(self, pairs: Sequence[Pair], n_items: int, top: int = 20, recency: float = 0.8,
                 banned: frozenset[int] = frozenset(), chunk: int = 512) -> None:
        from scipy import sparse

        histories = _history_matrix(pairs, n_items, recency)  # (P, N): r^(H - l) at h_l
        targets = sparse.csr_matrix((np.ones(len(pairs), dtype=np.float32),
                                     ([*range(len(pairs))], [p.target for p in pairs])),
                                    shape=(len(pairs), n_items))  # (P, N) one-hot
        counts = np.asarray(targets.sum(axis=0)).ravel()  # (N,) c_n
        pair_counts = (histories.T @ targets).tocsr()  # (N, N) C
        scored = (pair_counts @ sparse.diags(1.0 / np.sqrt(np.maximum(counts, 1.0)))).tocsr()  # (N, N)
        self.allowed = np.setdiff1d(np.arange(n_items), np.fromiter(banned, dtype=np.int64))  # (A,)
        top = min(top, n_items)
        self.top = np.full((len(pairs), top), -1, dtype=np.int64)  # (P, top), -1 = none
        for start in range(0, len(pairs), chunk):
            block = pairs[start : start + chunk]
            scores = np.asarray((histories[start : start + chunk] @ scored).todense())  # (b, N) s_p
            for r, p in enumerate(block):
                scores[r, [*p.history, p.target]] = 0.0
            if banned:
                scores[:, list(banned)] = 0.0
            best = np.argsort(-scores, axis=1, kind="stable")[:, :top]  # (b, top)
            keep = np.take_along_axis(scores, best, axis=1) > 0  # (b, top)
            self.top[start : start + len(block)] = np.where(keep, best, -1)

    def draw(self, rows: Sequence[int], rng: random.Random) -> list[int]:
        """One hard negative for each of the pairs `rows` (indices into the training pairs)."""
        out = []
        for r in rows:
            found = self.top[r][self.top[r] >= 0]  # (k,)
            out.append(int(found[rng.randrange(len(found))]) if len(found)
                       else int(self.allowed[rng.randrange(len(self.allowed))]))
        return out


def _history_matrix(pairs: Sequence[Pair], n_items: int, recency: float) -> Any:
    """(P, N) sparse: row p holds r^(H - l) at each history item h_l of pair p (newest: 1)."""
    from scipy import sparse

    rows = [r for r, p in enumerate(pairs) for _ in p.history]
    cols = [i for p in pairs for i in p.history]
    vals = [recency ** (len(p.history) - 1 - pos) for p in pairs for pos in range(len(p.history))]
    return sparse.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(len(pairs), n_items))


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

    def rows(self, n: int) -> list[int]:
        """The indices of batch `n`'s pairs."""
        epoch, offset = divmod(n, self.per_epoch)
        order = list(range(len(self.pairs)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order[offset * self.size : (offset + 1) * self.size]

    def __getitem__(self, n: int) -> list[Pair]:
        return [self.pairs[i] for i in self.rows(n)]


@dataclass(frozen=True)
class Best:
    """The weights that validated best so far, at which step, with what score."""

    step: int
    score: float
    weights: dict[str, torch.Tensor]


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

    def step(self, pairs: Sequence[Pair], n: int, negatives: Sequence[int] = ()) -> float:
        """One optimiser step on `pairs`, with `negatives` (item indices) as hard negatives."""
        self.model.train()
        items = sorted({p.target for p in pairs} | set(negatives))
        row = {item: r for r, item in enumerate(items)}
        vectors = self.embed(items)  # (U, D), with gradients
        query = queries_from(self.bank, [p.history for p in pairs])  # (B, D), from the bank
        target = vectors[[row[p.target] for p in pairs]]  # (B, D)
        ids = torch.tensor([p.target for p in pairs])  # (B,)
        hard = vectors[[row[i] for i in negatives]] if negatives else None  # (M, D)
        loss = info_nce(query, target, ids, self.params.temperature,
                        self.log_q[ids] if self.params.log_q else None,
                        hard, torch.tensor(list(negatives)) if negatives else None)
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

    def validate(self, sets: Mapping[str, Sequence[Pair]], k: int = 10) -> dict[str, float]:
        """Per named set of pairs, HR@k of the next item among all items, ranked by cosine to the
        history's unit mean (the history's own items excluded); refreshes the bank once."""
        items = self.refresh_bank()  # (N, D)
        out = {}
        for name, pairs in sets.items():
            hits = 0
            for p in pairs:
                query = items[list(p.history)].sum(axis=0)  # (D,)
                scores = items @ query  # (N,)
                scores[list(p.history)] = -np.inf
                hits += int((scores > scores[p.target]).sum() < k)
            out[name] = hits / max(len(pairs), 1)
        return out

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.trainable.items()}

    @torch.no_grad()
    def restore(self, weights: dict[str, torch.Tensor]) -> None:
        for name, value in weights.items():
            self.trainable[name].copy_(value)

    def save_checkpoint(self, folder: Path, step: int, log: list[dict[str, Any]], best: Best) -> None:
        """Trainable weights, optimizer moments, the RNG and the best weights so far: a resumed
        run continues exactly."""
        target = folder / CHECKPOINT
        target.mkdir(parents=True, exist_ok=True)
        torch.save({"trainable": self.snapshot(), "optimizer": self.optimizer.state_dict(),
                    "rng": torch.get_rng_state(), "best": best.weights}, target / "state.pt")
        (target / "state.json").write_text(json.dumps(
            {"step": step, "log": log, "best_step": best.step, "best_score": best.score}))

    def load_checkpoint(self, folder: Path) -> tuple[int, list[dict[str, Any]], Best | None]:
        target = folder / CHECKPOINT
        if not (target / "state.json").is_file():
            return 0, [], None
        saved = torch.load(target / "state.pt", weights_only=True)  # tensors and plain values only
        self.restore(saved["trainable"])
        self.optimizer.load_state_dict(saved["optimizer"])
        state = json.loads((target / "state.json").read_text())
        torch.set_rng_state(saved["rng"])  # dropout continues as if never stopped
        best = Best(int(state["best_step"]), float(state["best_score"]), saved["best"])
        return int(state["step"]), list(state["log"]), best

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
    validation_items: Sequence[Pair] = (),
    held_out: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    """Train, validating at the start and every `checkpoint_every` steps, and write the weights
    that validated best to the model folder `out` with `finetune.json` (parameters, data split,
    validation curve, the step kept, version). `validation_items` are pairs whose targets
    (`held_out`) the training never sees, neither as targets nor as hard negatives; when given,
    they choose the step kept (the model is for items it was not tuned on), else `validation`."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(base, documents, params, [p.target for p in train])
    rng = random.Random(params.seed)
    sets = {"validation_hr10": rng.sample(list(validation), min(params.validation_pairs, len(validation)))}
    if validation_items:
        sets["validation_items_hr10"] = rng.sample(list(validation_items),
                                                   min(params.validation_pairs, len(validation_items)))
    choose = "validation_items_hr10" if validation_items else "validation_hr10"
    first, log, best = trainer.load_checkpoint(out) if resume else (0, [], None)
    if first == 0 or best is None:
        log = [{"step": 0, **trainer.validate(sets)}]
        best = Best(0, log[0][choose], trainer.snapshot())
    else:
        trainer.refresh_bank()  # the resumed weights' vectors (no randomness drawn)
    negatives = (HardNegatives(train, len(documents), params.hard_top, banned=held_out)
                 if params.hard_negatives else None)
    batches = Batches(train, params.batch, params.seed)
    losses: list[float] = []
    for n in range(first, params.steps):
        rows = batches.rows(n)
        hard = negatives.draw(rows, random.Random(params.seed * 1_000_003 + n)) if negatives else []
        losses.append(trainer.step([train[r] for r in rows], n, hard))
        progress(n + 1, losses[-1])
        if (n + 1) % params.checkpoint_every == 0 or n + 1 == params.steps:
            log.append({"step": n + 1, "loss": float(np.mean(losses[-params.checkpoint_every :])),
                        **trainer.validate(sets)})
            if log[-1][choose] > best.score:
                best = Best(n + 1, log[-1][choose], trainer.snapshot())
            trainer.save_checkpoint(out, n + 1, log, best)
    if params.keep == "last":
        best = Best(params.steps, log[-1][choose], trainer.snapshot())
    trainer.restore(best.weights)
    trainer.save_model(out)
    info = {
        "version": folder_version(out),
        **metadata,
        "base": trainer.base_version,
        "params": asdict(params),
        "train_pairs": len(train),
        "validation_pairs": {name: len(pairs) for name, pairs in sets.items()},
        "kept": {"step": best.step, "by": choose, "score": best.score},
        "log": log,
        "wall_s": round(time.monotonic() - started, 1),
    }
    (out / "finetune.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
