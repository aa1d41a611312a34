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
    """(..., d) (x - mean) / sqrt(var + eps) * weight + bias over the last axis: the mean as one
    product with a (d,) vector of 1/d, the variance as one row-wise dot, the rest in place."""
    width = x.shape[-1]
    centred = x - (x @ np.full(width, 1.0 / width, np.float32))[..., None]  # (..., d)
    var = np.einsum("...i,...i->...", centred, centred) / np.float32(width)  # (...,)
    centred *= (1.0 / np.sqrt(var + np.float32(LN_EPS)))[..., None]
    centred *= weight
    centred += bias
    return centred


def attention_mask(present: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """(B, L, L) which key s each query t may attend to: s <= t and s holds an item, or s = t (a
    padding query attends to itself only, so no row is empty). present: (B, L)."""
    length = present.shape[1]
    causal = np.tril(np.ones((length, length), bool))  # (L, L)
    return (causal[None] & present[:, None, :]) | np.eye(length, dtype=bool)[None]


def _linear(x: F32, weight: F32, bias: F32) -> F32:
    """(..., k) x W^T + b for x (..., j), W (k, j): one matrix product over every leading index."""
    flat = x.reshape(-1, x.shape[-1]) @ weight.T  # (prod(...), k)
    flat += bias
    return flat.reshape(*x.shape[:-1], weight.shape[0])


def _spread(values: F32, at: Ints, b_n: int, length: int) -> F32:
    """(B, L, c) with the (T, c) `values` at the flat positions `at` (b L + t), zeros elsewhere."""
    out = np.zeros((b_n * length, values.shape[1]), np.float32)  # (B L, c)
    out[at] = values
    return out.reshape(b_n, length, -1)


def _heads(x: F32, heads: int) -> F32:
    """(B, H, L, d/H) from (B, L, d): a view for one head (a product reads its strides), else a
    contiguous copy."""
    b_n, length, width = x.shape
    if heads == 1:
        return x[:, None]
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
        nothing in their window gets zeros.

        Every step but the attention is position-wise, so it runs on the T positions that hold
        an entry only (flat, (T, d)), not on the padding (a padded key is never attended to,
        so the present positions' values are the same). Only h at the last position is read,
        so the last block computes its query, attention output and feed-forward there alone
        (keys and values everywhere)."""
        a = self.arrays
        width, heads = self.width, self.heads
        out = np.zeros((windows.shape[0], width), np.float32)  # (B, d)
        users = np.flatnonzero(windows[:, -1] != -1)  # (U,) users with an entry: the newest is at L - 1
        if not users.size:
            return out
        windows = windows[users]  # (U, L)
        u_n, length = windows.shape
        present = windows != -1  # (U, L)
        at = np.flatnonzero(present)  # (T,) flat u L + t of each present position, user by user
        entries = windows.ravel()[at]  # (T,)
        x = items[np.maximum(entries, 0)]  # (T, d)
        if searches is not None:
            asked = entries <= -2  # (T,)
            x[asked] = searches[-2 - entries[asked]]
        x *= np.float32(np.sqrt(width))
        x += a["positions"][at % length]  # (T, d)
        hidden_keys = np.where(attention_mask(present), np.float32(0.0), np.float32(-np.inf))  # (U, L, L)
        hidden_keys = hidden_keys[:, None]  # (U, 1, L, L) added to the logits: -inf where not allowed
        newest = np.searchsorted(at, np.arange(u_n) * length + length - 1)  # (U,) each user's last row of x
        scale = np.float32(1.0 / np.sqrt(width // heads))
        for n in range(self.blocks):
            p = {name: a[f"block{n}.{name}"] for name in BLOCK_ARRAYS}
            last = n == self.blocks - 1
            weight, bias = p["qkv.weight"], p["qkv.bias"]  # (3d, d), (3d,): q, k, v rows in turn
            h = layer_norm(x, p["ln1.weight"], p["ln1.bias"])  # (T, d)
            if last:  # queries at each user's newest position only: (U, L, 2d), (U, 1, 1, L), (U, d)
                kv = _spread(_linear(h, weight[width:], bias[width:]), at, u_n, length)
                mask, x = hidden_keys[:, :, -1:], x[newest]
                q = _linear(h[newest], weight[:width], bias[:width])[:, None]  # (U, 1, d)
            else:
                qkv = _spread(_linear(h, weight, bias), at, u_n, length)  # (U, L, 3d)
                q, kv, mask = qkv[..., :width], qkv[..., width:], hidden_keys  # (U, L, d), (U, L, 2d)
            q, k, v = (_heads(t, heads) for t in (q, kv[..., :width], kv[..., width:]))  # (U, H, Q|L, dh)
            logits = q @ k.transpose(0, 1, 3, 2)  # (U, H, Q, L)
            logits *= scale
            logits += mask
            logits -= logits.max(axis=-1, keepdims=True)
            weights = np.exp(logits, out=logits)
            weights /= weights.sum(axis=-1, keepdims=True)  # (U, H, Q, L) softmax over keys
            mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(-1, width)  # (U Q, d)
            x += _linear(mixed if last else mixed[at], p["out.weight"], p["out.bias"])  # (U | T, d)
            h = layer_norm(x, p["ln2.weight"], p["ln2.bias"])
            hidden = _linear(h, p["ff1.weight"], p["ff1.bias"])  # (U | T, inner)
            np.maximum(hidden, np.float32(0.0), out=hidden)  # relu
            x += _linear(hidden, p["ff2.weight"], p["ff2.bias"])
        out[users] = layer_norm(x, a["norm.weight"], a["norm.bias"])  # (U, d)
        return out

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
