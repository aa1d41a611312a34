"""The encoder the settings name: model folder, backend, text cache, ONNX export folder."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from encoders import Encoder
from encoders.loading import Backend, load_encoder
from streams.cache_dir import cache_dir
from streams.settings import Settings


def open_encoder(settings: Settings, model: str | None = None, backend: str | None = None,
                 cache_texts: int | None = None) -> Encoder:
    """`model`/`backend`/`cache_texts` override the settings (command-line flags)."""
    return load_encoder(
        settings.encoder if model is None else model,
        cast(Backend, settings.encoder_backend if backend is None else backend),
        onnx_cache=Path(settings.onnx_cache) if settings.onnx_cache else cache_dir() / "onnx",
        cache_size=settings.encoder_cache_texts if cache_texts is None else cache_texts,
        batch_size=settings.embed_batch,
        threads=settings.encoder_threads,
    )
