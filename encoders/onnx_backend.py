"""The same sentence model run by ONNX Runtime: fp32 (same vectors as torch) or int8 weights.

Export once per model folder into a cache folder, keyed by the folder's version:
  <cache>/<version>/model.onnx        fp32 graph: (input_ids, attention_mask) -> (B, D) unit rows
  <cache>/<version>/model-int8.onnx   the same with MatMul weights quantised to int8, one scale per
                                      output channel; activations quantised per call (dynamic)
ONNX Runtime fuses attention, GELU and layer norm when it loads the graph (ORT_ENABLE_ALL).
int8 vectors differ from fp32 ones (cosine ~0.99), so an int8 encoder has its own version: the
engine never mixes its vectors with fp32 ones.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from encoders.batching import encode_sorted
from encoders.model_folder import FastTokenizer, folder_version, load_tokenizer, resolve_model_folder

OPSET = 17


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


def quantize_int8(fp32: Path, target: Path) -> None:
    """Dynamic quantisation: int8 weights with per-channel scales, activations scaled per call."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantiser's advice to pre-process, logged on the root logger
    try:
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)


def exported(folder: Path, cache: Path, int8: bool) -> Path:
    """The graph for `folder`, exported (and quantised) on first use; written atomically, so
    workers starting together never read half a file."""
    home = cache / folder_version(folder).replace("@", "-")
    fp32, q8 = home / "model.onnx", home / "model-int8.onnx"
    home.mkdir(parents=True, exist_ok=True)
    for path, make in ((fp32, lambda t: export_fp32(folder, t)), (q8, lambda t: quantize_int8(fp32, t))):
        if path == q8 and not int8:
            break
        if not path.is_file():
            with tempfile.TemporaryDirectory(dir=home) as scratch:
                partial = Path(scratch) / path.name
                make(partial)
                os.replace(partial, path)
    return q8 if int8 else fp32


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
        import onnxruntime as ort

        self.folder = resolve_model_folder(model)
        self.fast = FastTokenizer.of(self.folder, max_length)
        self.tokenizer = load_tokenizer(self.folder) if self.fast is None else None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(exported(self.folder, cache, int8)), options, providers=["CPUExecutionProvider"])
        self.dim: int = int(self.session.get_outputs()[0].shape[1] or _hidden_size(self.folder))
        self.backend = "onnx-int8" if int8 else "onnx-fp32"
        # fp32 vectors equal torch's (to ~1e-6): same space; int8 ones are a space of their own
        self.version: str = folder_version(self.folder) + ("+int8" if int8 else "")
        self.batch_size = batch_size
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(N,) texts -> (N, D) float32 unit rows, batched in order of length to cut padding."""
        return encode_sorted(texts, self.batch_size, self.dim, self._encode_batch)

    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if self.fast is not None:
            ids, mask = self.fast(texts)  # (B, T), (B, T)
        else:
            assert self.tokenizer is not None
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
            ids = batch["input_ids"].astype(np.int64, copy=False)  # (B, T)
            mask = batch["attention_mask"].astype(np.int64, copy=False)  # (B, T)
        (vectors,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})  # (B, D)
        return np.asarray(vectors, dtype=np.float32)


def _hidden_size(folder: Path) -> int:
    import json

    return int(json.loads((folder / "config.json").read_text())["hidden_size"])
