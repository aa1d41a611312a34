"""The encoder the settings name: model folder, backend, text cache, ONNX export folder.

A model is "" or all-MiniLM-L6-v2 (packaged), a local model folder, or the name of an encoder
`interests install-encoder` assembles into the cache (all-mpnet-base-v2)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from encoders import Encoder
from encoders.loading import Backend, load_encoder
from streams.cache_dir import cache_dir
from streams.settings import Settings

INSTALLABLE = ("all-mpnet-base-v2",)  # assembled by streams/ops/encoder_install.py
# A worker's encoder runs in the calling thread unless INTERESTS_ENCODER_THREADS says otherwise. An
# intra-op pool's threads spin after each call, waiting for the next, and a worker calls its
# encoder for a few texts at a time, milliseconds apart: at 15 searches/s ONNX Runtime's default
# pool (one thread per core) took 42-44 ms of CPU per search, one thread 3.1 ms at the same
# latency (docs/performance.md, "A worker's encoder on one thread").
WORKER_ENCODER_THREADS = 1


def worker_encoder_threads(settings: Settings) -> int:
    return settings.encoder_threads or WORKER_ENCODER_THREADS


def installed_folder(name: str, cache: Path) -> Path:
    return cache / "encoders" / name


def model_folder(model: str) -> str:
    """An installable encoder's name -> its folder in the cache; anything else as it is."""
    if model not in INSTALLABLE:
        return model
    folder = installed_folder(model, cache_dir())
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"encoder {model} is not installed: run `make mpnet` or "
                                f"`interests install-encoder {model}` (fetches it from PyPI once)")
    return str(folder)


def open_encoder(settings: Settings, model: str | None = None, backend: str | None = None,
                 cache_texts: int | None = None, threads: int | None = None) -> Encoder:
    """`model`/`backend`/`cache_texts`/`threads` override the settings (command-line flags, a
    worker's threads)."""
    return load_encoder(
        model_folder(settings.encoder if model is None else model),
        cast(Backend, settings.encoder_backend if backend is None else backend),
        onnx_cache=Path(settings.onnx_cache) if settings.onnx_cache else cache_dir() / "onnx",
        cache_size=settings.encoder_cache_texts if cache_texts is None else cache_texts,
        batch_size=settings.embed_batch,
        threads=settings.encoder_threads if threads is None else threads,
    )
