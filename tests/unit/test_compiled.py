"""The core's compiled loops work where numba can keep no cache on disk."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core import config

from cf.compiled import compiled


def add_one(x: np.ndarray) -> np.ndarray:
    return x + 1


def test_a_process_that_can_write_no_cache_compiles_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # only the locator for code inside zip files: none applies to this module, as where neither
    # __pycache__ nor a home directory is writable
    monkeypatch.setattr(config, "CACHE_LOCATOR_CLASSES", "ZipCacheLocator")
    function = compiled(add_one)
    assert function(np.arange(3)).tolist() == [1, 2, 3]
    assert not function._cache.cache_path  # nothing kept on disk


def test_where_it_can_the_compiled_code_is_kept() -> None:
    function = compiled(add_one)
    assert function(np.arange(2)).tolist() == [1, 2]
    assert function._cache.cache_path
