"""The same sentence model run by ONNX Runtime: fp32 (same vectors as torch) or int8 weights.

Export once per model folder into a cache folder, keyed by the folder's version:
  <cache>/<version>/model.onnx        fp32 graph: (input_ids, attention_mask) -> (B, D) unit rows
  <cache>/<version>/model-int8.onnx   the same with int8 weights, one of two ways (model-int8.json)
ONNX Runtime fuses attention, GELU and layer norm when it loads the graph (ORT_ENABLE_ALL).

int8, the fastest first:
  dynamic    MatMul weights int8 with one scale per output channel, activations quantised per
             call with one scale per tensor. Fine for MiniLM (cosine to fp32 ~0.99); useless for a
             model whose hidden states carry outlier channels (all-mpnet-base-v2: cosine ~0.05),
             since one scale per tensor leaves the other channels a handful of levels.
  blockwise  weights int8 in blocks of 32 along the input with a scale per block (MatMulNBits,
             8 bits), activations quantised per block inside the kernel: outliers stay local.
The dynamic graph is kept when its vectors for a fixed probe set stay within cosine 0.98 (mean)
and 0.95 (min) of the fp32 graph's, else the blockwise one is made and checked the same way.
int8 vectors differ from fp32 ones, so an int8 encoder has its own version (`+int8`, or
`+int8-blockwise`): the engine never mixes its vectors with fp32 ones.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from encoders.batching import encode_sorted
from encoders.model_folder import FastTokenizer, folder_version, load_tokenizer, resolve_model_folder

if TYPE_CHECKING:
    import onnxruntime as ort

OPSET = 17
PROBES = ("a", "horror", "a much longer text about science fiction films in space",
          "Toy Story (1995). Animation, Children's, Comedy", "baking bread and pastry at home",
          "The Usual Suspects (1995). Crime, Thriller. Five criminals. One line up. No coincidence.",
          "cheap flights to Lisbon in May", "documentaries about deep sea creatures")
MIN_COSINE = (0.98, 0.95)  # mean, min over the probes, int8 against fp32


def export_fp32(folder: Path, target: Path) -> None:
    """Trace the pooled model of `folder` to `target`. A freshly loaded copy with eager attention
    is traced (tracing a model later used eagerly can change its outputs; eager attention
    traces to plain MatMul/Softmax that ORT fuses)."""
    import torch
    from transformers import AutoModel

    from encoders.pooling import SentenceModel

    tokenizer = load_tokenizer(folder)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager")
    sample = tokenizer(["a short text", "a somewhat longer text to trace"], padding=True, return_tensors="pt")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python-side branches fixed at trace time
        torch.onnx.export(
            SentenceModel(model.eval()),
            (sample["input_ids"], sample["attention_mask"]),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                          "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def quantize_dynamic_int8(fp32: Path, target: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantiser's advice to pre-process, logged on the root logger
    try:
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)


def quantize_blockwise_int8(fp32: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    # accuracy_level 4: the kernel quantises activations to int8 per block and multiplies in int8
    quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), False)


def probe_cosines(folder: Path, reference: Path, other: Path) -> tuple[float, float]:
    """Mean and min cosine between two graphs' vectors for PROBES."""
    ids, mask = token_ids(folder, 128)(list(PROBES))  # (P, T), (P, T)
    a, b = (np.asarray(_session(graph, 0).run(None, {"input_ids": ids, "attention_mask": mask})[0])
            for graph in (reference, other))  # (P, D) unit rows each
    cos = np.einsum("pd,pd->p", a, b)  # (P,)
    return float(cos.mean()), float(cos.min())


def token_ids(folder: Path, max_length: int
              ) -> Callable[[list[str]], tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """The folder's tokenizer as (B,) texts -> (B, T) ids and (B, T) mask: the `tokenizers`
    library alone where the folder has a `tokenizer.json`, else transformers' tokenizer."""
    fast = FastTokenizer.of(folder, max_length)
    if fast is not None:
        return fast
    tokenizer = load_tokenizer(folder)

    def slow(texts: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        return (batch["input_ids"].astype(np.int64, copy=False),  # (B, T)
                batch["attention_mask"].astype(np.int64, copy=False))  # (B, T)

    return slow


def exported(folder: Path, cache: Path, int8: bool) -> Path:
    """The graph for `folder`, exported (and quantised) on first use; written atomically, so
    workers starting together never read half a file."""
    home = cache / folder_version(folder).replace("@", "-")
    fp32, q8, note = home / "model.onnx", home / "model-int8.onnx", home / "model-int8.json"
    home.mkdir(parents=True, exist_ok=True)
    if not fp32.is_file():
        _atomically(fp32, lambda t: export_fp32(folder, t))
    if int8 and not (q8.is_file() and note.is_file()):
        _atomically(q8, lambda t: _quantize_checked(folder, fp32, t, note))
    return q8 if int8 else fp32


def int8_method(graph: Path) -> str:
    """"dynamic" or "blockwise": how an exported int8 graph was made."""
    note = graph.with_suffix(".json")
    return str(json.loads(note.read_text())["method"]) if note.is_file() else "dynamic"


def _quantize_checked(folder: Path, fp32: Path, target: Path, note: Path) -> None:
    tried: dict[str, dict[str, float]] = {}
    for method, quantize in (("dynamic", quantize_dynamic_int8), ("blockwise", quantize_blockwise_int8)):
        quantize(fp32, target)
        mean, low = probe_cosines(folder, fp32, target)
        tried[method] = {"cosine_mean": round(mean, 5), "cosine_min": round(low, 5)}
        if mean >= MIN_COSINE[0] and low >= MIN_COSINE[1]:
            break
    else:
        raise RuntimeError(f"{folder.name}: no int8 graph keeps its vectors ({tried}); use onnx-fp32")

    def write(path: Path) -> None:
        path.write_text(json.dumps({"method": method, "probes": tried}) + "\n")

    _atomically(note, write)


def _atomically(path: Path, make: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        partial = Path(scratch) / path.name
        make(partial)
        os.replace(partial, path)


def _session(graph: Path, threads: int) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    def __init__(
        self,
        model: str = "",
        *,
        int8: bool = False,
        cache: Path,
        batch_size: int = 32,
        max_length: int = 128,
        threads: int = 0,  # ONNX Runtime intra-op threads; 0 = one per core
    ) -> None:
        self.folder = resolve_model_folder(model)
        self.tokenize = token_ids(self.folder, max_length)
        graph = exported(self.folder, cache, int8)
        self.session = _session(graph, threads)
        self.dim: int = int(self.session.get_outputs()[0].shape[1] or _hidden_size(self.folder))
        self.backend = "onnx-int8" if int8 else "onnx-fp32"
        # fp32 vectors equal torch's (to ~1e-6): same space; int8 ones are a space of their own
        method = int8_method(graph) if int8 else ""
        suffix = {"": "", "dynamic": "+int8"}.get(method, f"+int8-{method}")
        self.version: str = folder_version(self.folder) + suffix
        self.batch_size = batch_size
        self.max_length = max_length

    @property
    def threads(self) -> int:
        """ONNX Runtime's intra-op threads as asked for (0: one per core)."""
        return int(self.session.get_session_options().intra_op_num_threads)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(N,) texts -> (N, D) float32 unit rows, batched in order of length to cut padding."""
        return encode_sorted(texts, self.batch_size, self.dim, self._encode_batch)

    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        ids, mask = self.tokenize(texts)  # (B, T), (B, T)
        (vectors,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})  # (B, D)
        return np.asarray(vectors, dtype=np.float32)


def _hidden_size(folder: Path) -> int:
    import json

    return int(json.loads((folder / "config.json").read_text())["hidden_size"])
