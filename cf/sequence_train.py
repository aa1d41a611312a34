"""Training the sequential interest model (`cf.sequence`) in torch, on users' item sequences.

Every position of every training window predicts the next item with a softmax cross-entropy over
all items (Klenitskiy & Vasilev 2023, "Turning Dross Into Gold Loss: is BERT4Rec really better
than SASRec?": SASRec trained this way instead of with one negative per position matches or beats
BERT4Rec), or over `negatives` items sampled uniformly per batch for a catalog too large for it:

    loss = - sum_{b, t present} log softmax_i(h_{b,t} . e_i)[s_{b,t+1}]

ID dropout: in each batch a share `id_dropout` of the items lose their id embedding (E_id row
zeroed, in the inputs and the softmax alike), so that P v_i alone learns to place an item: what
serves an item the model never saw.

Each user's last item is held out as a validation target; training stops when NDCG@k on those
targets (full ranking over the items the user has not consumed, as `interests eval` ranks) has not
improved for `patience` epochs, and the best epoch's weights are kept. Deterministic for a seed on
one machine (torch's CPU kernels; float rounding differs between CPUs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from cf.sequence import SequenceModel, sequence_version

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SeqParams:
    max_len: int = 50  # L: the latest items the model reads
    width: int = 64  # d
    blocks: int = 2
    heads: int = 1
    inner: int = 64  # the feed-forward's hidden width: d, as SASRec's; 4d (256) read no better on validation
    dropout: float = 0.1  # chosen on MovieLens-100k validation targets: 0.1 > 0.2 > 0.5
    id_dropout: float = 0.2  # share of items without their id embedding in each batch
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch: int = 128  # windows per step
    max_epochs: int = 200
    patience: int = 5  # epochs without a better validation NDCG before stopping
    warm_patience: int = 4  # the same, continuing from an earlier model (a periodic retrain)
    negatives: int = 0  # 0: softmax over all items; else this many sampled per batch
    k: int = 10  # validation NDCG@k
    seed: int = 0
    threads: int = 0  # torch threads; 0: torch's default


@dataclass
class TrainLog:
    epochs: list[dict[str, float]] = field(default_factory=list)  # epoch, loss, val_ndcg, wall_s
    best_epoch: int = 0
    best_ndcg: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"best_epoch": self.best_epoch, "best_ndcg": round(self.best_ndcg, 4), "epochs": self.epochs}


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ff1, self.ff2 = nn.Linear(width, inner), nn.Linear(inner, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b_n, length, width = x.shape  # (B, L, d)
        q, k, v = (t.reshape(b_n, length, self.heads, width // self.heads).transpose(1, 2)
                   for t in self.qkv(self.ln1(x)).chunk(3, dim=-1))  # each (B, H, L, dh)
        mixed = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.drop.p if self.training else 0.0)  # (B, H, L, dh)
        x = x + self.drop(self.out(mixed.transpose(1, 2).reshape(b_n, length, width)))
        return x + self.drop(self.ff2(self.drop(torch.relu(self.ff1(self.ln2(x))))))


class _Net(nn.Module):
    """The model of `cf.sequence`, in torch; its state_dict names are `SequenceModel.arrays`'."""

    def __init__(self, text: torch.Tensor, params: SeqParams) -> None:
        super().__init__()
        m, dim = text.shape
        self.register_buffer("text", text)  # (M, D) float32 text vectors of the trained items
        self.id_embeddings = nn.Parameter(torch.randn(m, params.width) * 0.02)  # (M, d)
        self.projection = nn.Parameter(torch.randn(params.width, dim) * (1.0 / math.sqrt(dim)))  # (d, D)
        self.positions = nn.Parameter(torch.randn(params.max_len, params.width) * 0.02)  # (L, d)
        self.block = nn.ModuleList(_Block(params.width, params.heads, params.inner, params.dropout)
                                   for _ in range(params.blocks))
        self.norm = nn.LayerNorm(params.width)
        self.drop = nn.Dropout(params.dropout)
        self.width = params.width

    def items(self, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(M, d) e_i = keep_i E_id[i] + P v_i (keep: (M,) 0/1, the batch's ID dropout)."""
        ids = self.id_embeddings if keep is None else self.id_embeddings * keep[:, None]
        text: torch.Tensor = self.text  # type: ignore[assignment]
        return ids + text @ self.projection.T

    def forward(self, windows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, L, d) h at every position of (B, L) windows of item rows (-1: padding)."""
        present = windows >= 0  # (B, L)
        length = windows.shape[1]
        x = items[windows.clamp(min=0)] * math.sqrt(self.width) + self.positions[None]  # (B, L, d)
        x = self.drop(x) * present[:, :, None]
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool))  # (L, L)
        allowed = (causal[None] & present[:, None, :]) | torch.eye(length, dtype=torch.bool)[None]
        allowed = allowed[:, None]  # (B, 1, L, L)
        for block in self.block:
            x = block(x, allowed) * present[:, :, None]
        return self.norm(x)

    def arrays(self) -> dict[str, F32]:
        out = {}
        for name, value in self.state_dict().items():
            if name == "text":
                continue
            name = name.replace("block.", "block", 1) if name.startswith("block.") else name
            out[name] = value.detach().cpu().numpy().astype(np.float32)
        return out


Int64 = npt.NDArray[np.int64]


def _windows(sequences: Sequence[Sequence[int]], length: int) -> tuple[Int64, Int64]:
    """(W, L) inputs and (W, L) next-item targets, -1 padded on the left: each sequence cut from
    its end into windows of L transitions, so long histories train on all their items."""
    inputs, targets = [], []
    for s in sequences:
        s = list(s)
        for end in range(len(s) - 1, 0, -length):
            start = max(0, end - length)
            x, y = s[start:end], s[start + 1 : end + 1]
            inputs.append([-1] * (length - len(x)) + x)
            targets.append([-1] * (length - len(y)) + y)
    if not inputs:
        return np.zeros((0, length), np.int64), np.zeros((0, length), np.int64)
    return np.array(inputs, np.int64), np.array(targets, np.int64)


def _loss(net: _Net, x: torch.Tensor, y: torch.Tensor, params: SeqParams,
          generator: torch.Generator) -> torch.Tensor:
    m = net.id_embeddings.shape[0]
    keep = (torch.rand(m, generator=generator) >= params.id_dropout).float()  # (M,)
    items = net.items(keep)  # (M, d)
    h = net(x, items)  # (B, L, d)
    present = y >= 0  # (B, L)
    h, target = h[present], y[present]  # (P, d), (P,)
    if params.negatives <= 0 or params.negatives >= m:
        return nn.functional.cross_entropy(h @ items.T, target)  # (P, M) logits
    negatives = torch.randint(0, m, (params.negatives,), generator=generator)  # (S,)
    positive = (h * items[target]).sum(dim=-1, keepdim=True)  # (P, 1)
    sampled = h @ items[negatives].T  # (P, S)
    sampled = sampled.masked_fill(negatives[None, :] == target[:, None], -torch.inf)  # accidental hits
    logits = torch.cat([positive, sampled], dim=1)  # (P, 1 + S)
    return nn.functional.cross_entropy(logits, torch.zeros_like(target))


def _validation_ndcg(net: _Net, contexts: torch.Tensor, targets: torch.Tensor,
                     seen: Sequence[Sequence[int]], k: int) -> float:
    """Mean NDCG@k of each target ranked over the items its user has not consumed."""
    if not len(targets):
        return 0.0
    net.eval()
    total = 0.0
    with torch.no_grad():
        items = net.items()  # (M, d)
        for start in range(0, len(targets), 512):
            h = net(contexts[start : start + 512], items)[:, -1]  # (b, d)
            scores = h @ items.T  # (b, M)
            for j, row in enumerate(scores):
                target = int(targets[start + j])
                consumed = torch.as_tensor([i for i in seen[start + j] if i != target],
                                           dtype=torch.long)  # (H,)
                row[consumed] = -torch.inf
                rank = int((row > row[target]).sum())
                total += 1.0 / math.log2(rank + 2.0) if rank < k else 0.0
    net.train()
    return total / len(targets)


def _warm_start(net: _Net, item_ids: Sequence[str], init: SequenceModel) -> None:
    """Every weight from `init`, and the id embedding of each item it knew (others stay new)."""
    state = net.state_dict()
    for name, value in init.arrays.items():
        key = name.replace("block", "block.", 1) if name.startswith("block") else name
        if key in state and key != "id_embeddings" and tuple(state[key].shape) == value.shape:
            state[key] = torch.from_numpy(value.copy())
    old = {item: n for n, item in enumerate(init.item_ids)}
    pairs = [(n, old[i]) for n, i in enumerate(item_ids) if i in old]
    if pairs and init.width == state["id_embeddings"].shape[1]:
        at, src = (torch.as_tensor(c) for c in zip(*pairs, strict=True))
        state["id_embeddings"][at] = torch.from_numpy(init.arrays["id_embeddings"][src.numpy()].copy())
    net.load_state_dict(state)


def train_sequence(
    histories: Mapping[str, Sequence[int]],  # user -> consumed catalog rows, oldest first
    item_ids: Sequence[str],  # (N,) catalog ids
    text: F32,  # (N, D) float32 text vectors, catalog order
    space: str,
    params: SeqParams = SeqParams(),
    init: SequenceModel | None = None,  # warm start (a periodic retrain continues from the last model)
    progress: Callable[[dict[str, float]], None] | None = None,  # called after each epoch
    checkpoint: Callable[[SequenceModel], None] | None = None,  # called with each better model
) -> tuple[SequenceModel, TrainLog]:
    """The model trained on the items that have interactions, each user's last item held out."""
    started = time.monotonic()
    used = sorted({i for items in histories.values() for i in items})
    if not used:
        raise ValueError("no interactions to train on")
    row = {item: m for m, item in enumerate(used)}
    sequences = [[row[i] for i in items] for items in histories.values() if items]
    ids = tuple(item_ids[i] for i in used)
    torch.manual_seed(params.seed)
    if params.threads:
        torch.set_num_threads(params.threads)
    generator = torch.Generator().manual_seed(params.seed)
    net = _Net(torch.from_numpy(np.ascontiguousarray(text[used], np.float32)), params)
    if init is not None:
        _warm_start(net, ids, init)
    held = [s for s in sequences if len(s) >= 2]
    inputs, targets = _windows([s[:-1] for s in sequences], params.max_len)
    contexts = torch.as_tensor(np.array([([-1] * params.max_len + s[:-1])[-params.max_len:] for s in held],
                                        np.int64).reshape(-1, params.max_len))  # (V, L)
    valid_targets = torch.as_tensor([s[-1] for s in held], dtype=torch.long)  # (V,)
    optimiser = torch.optim.Adam(net.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    log = TrainLog()
    best = net.arrays()
    x_all, y_all = torch.from_numpy(inputs), torch.from_numpy(targets)
    stale, patience = 0, params.patience if init is None else params.warm_patience
    for epoch in range(1, params.max_epochs + 1):
        order = torch.randperm(len(x_all), generator=generator)
        total, steps = 0.0, 0
        for start in range(0, len(order), params.batch):
            at = order[start : start + params.batch]
            loss = _loss(net, x_all[at], y_all[at], params, generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, steps = total + float(loss.detach()), steps + 1
        ndcg = _validation_ndcg(net, contexts, valid_targets, [s[:-1] for s in held], params.k)
        entry = {"epoch": epoch, "loss": round(total / max(steps, 1), 4), "val_ndcg": round(ndcg, 4),
                 "wall_s": round(time.monotonic() - started, 1)}
        log.epochs.append(entry)
        if progress is not None:
            progress(entry)
        if ndcg > log.best_ndcg or epoch == 1:
            log.best_epoch, log.best_ndcg, best, stale = epoch, ndcg, net.arrays(), 0
            if checkpoint is not None:
                checkpoint(_model(ids, best, params, space))
        else:
            stale += 1
            if stale >= patience:
                break
    return _model(ids, best, params, space), log


def _model(ids: tuple[str, ...], arrays: dict[str, F32], params: SeqParams, space: str) -> SequenceModel:
    return SequenceModel(ids, arrays, params.heads, space, sequence_version(ids, arrays))
