"""The sequential interest model, served: a causal self-attention encoder over a user's latest
items whose item embeddings are grounded in the items' text (`cf.sequence_train` trains it).

SASRec (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation") with its item input and
output embeddings built from the language model's vectors, as in text-based sequential models
(Hou et al. 2022, "Towards Universal Sequence Representation Learning for Recommender Systems",
UniSRec; Li et al. 2023, "Text Is All You Need", Recformer):

    e_i = E_id[i] + P v_i             (d,)  v_i the item's (D,) text vector, P (D, d) learned;
                                            an item the model never saw has no E_id row: e_i = P v_i
    x_t = sqrt(d) e_{s_t} + p_t       (L, d) the last L items s_1..s_L, left-padded, p learned
    per block (pre-norm):
        x <- x + MHA(LN_1(x))         causal: position t attends to positions <= t that hold an item
        x <- x + W_2 relu(W_1 LN_2(x) + b_1) + b_2
    h = LN(x_L)                       (d,) the user's sequence representation
    score_i = h . e_i                 every item, cold ones included

Served in numpy from plain arrays (`sequence.npz`, `sequence.json`): a worker needs neither torch
nor ONNX Runtime for it, and one batched pass covers every user of a batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
Ints = npt.NDArray[np.intp]
SEQUENCE_FORMAT = "interests-seq/1"
LN_EPS = 1e-5  # torch.nn.LayerNorm's
BLOCK_ARRAYS = ("ln1.weight", "ln1.bias", "qkv.weight", "qkv.bias", "out.weight", "out.bias",
                "ln2.weight", "ln2.bias", "ff1.weight", "ff1.bias", "ff2.weight", "ff2.bias")


def layer_norm(x: F32, weight: F32, bias: F32) -> F32:
    """(..., d) (x - mean) / sqrt(var + eps) * weight + bias over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return (centred / np.sqrt(var + LN_EPS) * weight + bias).astype(np.float32)


def attention_mask(present: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """(B, L, L) which key s each query t may attend to: s <= t and s holds an item, or s = t (a
    padding query attends to itself only, so no row is empty). present: (B, L)."""
    length = present.shape[1]
    causal = np.tril(np.ones((length, length), bool))  # (L, L)
    return (causal[None] & present[:, None, :]) | np.eye(length, dtype=bool)[None]


def _linear(x: F32, weight: F32, bias: F32) -> F32:
    """(..., k) x W^T + b for x (..., j), W (k, j): one matrix product over every leading index."""
    flat = x.reshape(-1, x.shape[-1]) @ weight.T + bias  # (prod(...), k)
    return flat.reshape(*x.shape[:-1], weight.shape[0])


def _heads(x: F32, heads: int) -> F32:
    """(B, H, L, d/H) contiguous, from (B, L, d)."""
    b_n, length, width = x.shape
    return np.ascontiguousarray(x.reshape(b_n, length, heads, width // heads).transpose(0, 2, 1, 3))


@dataclass(frozen=True)
class SequenceModel:
    item_ids: tuple[str, ...]  # (M,) the items trained with an id embedding
    arrays: Mapping[str, F32]  # every weight, by name (`sequence.npz`); torch's layout: y = x W^T + b
    heads: int
    space: str  # encoder version the projection expects
    version: str  # content hash

    @property
    def width(self) -> int:
        return int(self.arrays["id_embeddings"].shape[1])

    @property
    def max_len(self) -> int:
        return int(self.arrays["positions"].shape[0])

    @property
    def blocks(self) -> int:
        return sum(1 for name in self.arrays if name.endswith(".ln1.weight"))

    def aligned(self, ids: Sequence[str], text: F32) -> F32:
        """(N, d) e_i for catalog rows `ids` with text vectors `text` (N, D): E_id[i] + P v_i where
        the model knows the item, P v_i where it does not."""
        out = self.project(text)  # (N, d)
        row = {item: m for m, item in enumerate(self.item_ids)}
        known = [(n, row[i]) for n, i in enumerate(ids) if i in row]
        if known:
            at, src = (np.array(c, dtype=np.intp) for c in zip(*known, strict=True))
            out[at] += self.arrays["id_embeddings"][src]
        return out

    def project(self, text: F32) -> F32:
        """(N, d) P v for (N, D) text vectors: an item's input without its id row, or a search's."""
        return (text.astype(np.float32) @ self.arrays["projection"].T).astype(np.float32)

    def window(self, histories: Sequence[Ints],
               searches_after: Sequence[Sequence[int]] | None = None) -> Ints:
        """(B, L) each user's latest L entries, oldest first, left-padded with -1: catalog rows,
        those < 0 (items not in the catalog) dropped first, and with `searches_after` (per user,
        each of their searches' items consumed since, oldest first; `cf.searches`) the batch's
        searches numbered in that order user after user, search j as -2 - j, each placed before
        the last `after` rows of its user's history."""
        length = self.max_len
        out = np.full((len(histories), length), -1, np.intp)  # (B, L)
        j = 0  # the batch's searches numbered so far
        for b, rows in enumerate(histories):
            rows = np.asarray(rows, np.intp)
            after = searches_after[b] if searches_after is not None else ()
            if after:
                places = np.clip(rows.size - np.asarray(after, np.intp), 0, rows.size)  # (S_b,) ascending
                rows = np.insert(rows, places, -2 - np.arange(j, j + len(after)))  # (H + S_b,) in order
                j += len(after)
            rows = rows[rows != -1][-length:]
            if rows.size:
                out[b, length - rows.size :] = rows
        return out

    def represent(self, items: F32, windows: Ints, searches: F32 | None = None) -> F32:
        """(B, d) h for each user's (L,) window (`window`) of rows of `items` (N, d) (`aligned`)
        and of `searches` (S, d) (their `project`ed text, search j at -2 - j); a user with
        nothing in their window gets zeros. Only h at the last position is read, so the last
        block computes its queries, attention output and feed-forward there alone (keys and
        values everywhere)."""
        a = self.arrays
        b_n, length = windows.shape
        width, heads = self.width, self.heads
        present = windows != -1  # (B, L)
        x = items[np.maximum(windows, 0)]  # (B, L, d)
        if searches is not None:
            asked = windows <= -2  # (B, L)
            x[asked] = searches[-2 - windows[asked]]
        x *= np.float32(np.sqrt(width))
        x += a["positions"][None]
        x *= present[:, :, None]
        allowed = attention_mask(present)[:, None]  # (B, 1, L, L)
        for n in range(self.blocks):
            p = {name: a[f"block{n}.{name}"] for name in BLOCK_ARRAYS}
            at = slice(length - 1, length) if n == self.blocks - 1 else slice(0, length)  # query positions
            h = layer_norm(x, p["ln1.weight"], p["ln1.bias"])  # (B, L, d)
            qkv = _linear(h, p["qkv.weight"], p["qkv.bias"])  # (B, L, 3d)
            q = _heads(qkv[:, at, :width], heads)  # (B, H, Q, dh)
            k = _heads(qkv[:, :, width : 2 * width], heads)  # (B, H, L, dh)
            v = _heads(qkv[:, :, 2 * width :], heads)  # (B, H, L, dh)
            logits = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(width // heads))  # (B, H, Q, L)
            logits = np.where(allowed[:, :, at], logits, -np.inf)
            logits -= logits.max(axis=-1, keepdims=True)
            weights = np.exp(logits)
            weights /= weights.sum(axis=-1, keepdims=True)  # (B, H, Q, L) softmax over keys
            mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(b_n, -1, width)  # (B, Q, d)
            x = x[:, at] + _linear(mixed, p["out.weight"], p["out.bias"])  # (B, Q, d)
            h = layer_norm(x, p["ln2.weight"], p["ln2.bias"])
            hidden = np.maximum(_linear(h, p["ff1.weight"], p["ff1.bias"]), 0.0)  # (B, Q, 4d) relu
            x = x + _linear(hidden, p["ff2.weight"], p["ff2.bias"])
            x *= present[:, at, None]
        out = layer_norm(x[:, -1], a["norm.weight"], a["norm.bias"])  # (B, d)
        return (out * present[:, -1:]).astype(np.float32)

    def scores(self, items: F32, histories: Sequence[Ints], cols: Ints | None = None) -> F32:
        """(B, N) h_u . e_i of every user over the rows of `items` (N, d); (B, M) of `cols`."""
        h = self.represent(items, self.window(histories))  # (B, d)
        table = items if cols is None else items[cols]  # (N, d)
        return (h @ table.T).astype(np.float32)

    def save(self, folder: Path) -> Path:
        """Writes `sequence.npz` (plain arrays, no pickle) and `sequence.json`."""
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, F32] = {k: np.asarray(v, np.float32) for k, v in self.arrays.items()}
        np.savez(folder / "sequence.npz", allow_pickle=False, **arrays)
        meta = {"format": SEQUENCE_FORMAT, "version": self.version, "item_ids": list(self.item_ids),
                "heads": self.heads, "space": self.space, "width": self.width, "max_len": self.max_len,
                "blocks": self.blocks}
        (folder / "sequence.json").write_text(json.dumps(meta) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> SequenceModel:
        meta = json.loads((folder / "sequence.json").read_text())
        if meta.get("format") != SEQUENCE_FORMAT:
            raise ValueError(f"{folder}: not a {SEQUENCE_FORMAT} model (format {meta.get('format')!r})")
        with np.load(folder / "sequence.npz", allow_pickle=False) as data:
            arrays = {name: data[name].astype(np.float32) for name in data.files}
        return cls(tuple(meta["item_ids"]), arrays, int(meta["heads"]), str(meta["space"]),
                   str(meta["version"]))

    @staticmethod
    def present_in(folder: Path) -> bool:
        return (folder / "sequence.json").exists()


def sequence_version(item_ids: Sequence[str], arrays: Mapping[str, F32]) -> str:
    digest = hashlib.sha256()
    digest.update("\n".join(item_ids).encode())
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name], np.float32).tobytes())
    return f"seq-{digest.hexdigest()[:12]}"
