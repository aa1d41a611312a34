"""Where the product caches what it fetches or builds once: data sets, ONNX exports, Apache Kafka."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "realtime-interests"
