"""One way to build an encoder: model folder + backend + cache, as the settings name them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from encoders.base import Encoder

Backend = Literal["torch-fp32", "onnx-fp32", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)


def load_encoder(
    model: str = "",
    backend: Backend = "torch-fp32",
    *,
    onnx_cache: Path | None = None,
    cache_size: int = 0,
    batch_size: int = 32,
    max_length: int = 128,
    threads: int = 0,
) -> Encoder:
    """`model`: "" (packaged all-MiniLM-L6-v2) or a local model folder, fine-tuned ones included.
    `cache_size` > 0 puts an LRU cache of that many texts in front."""
    encoder: Encoder
    if backend == "torch-fp32":
        from encoders.transformer import TransformerEncoder

        encoder = TransformerEncoder(model, batch_size=batch_size, max_length=max_length, threads=threads)
    elif backend in ("onnx-fp32", "onnx-int8"):
        from encoders.onnx_backend import OnnxEncoder

        if onnx_cache is None:
            raise ValueError("the ONNX backends need a folder for the exported graphs")
        encoder = OnnxEncoder(model, int8=backend == "onnx-int8", cache=onnx_cache,
                              batch_size=batch_size, max_length=max_length, threads=threads)
    else:
        raise ValueError(f"unknown encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if cache_size > 0:
        from encoders.text_cache import CachedEncoder

        encoder = CachedEncoder(encoder, cache_size)
    return encoder
