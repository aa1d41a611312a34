"""numba's `njit` for the core's compiled loops, cached on disk where the process may write.

Compiled code is kept beside the module (`__pycache__`) or in the user's cache directory, and read
back by the next process in a fraction of a second instead of compiled again (seconds). A process
that can write to neither (a read-only image run as a user without a home) compiles at start
instead: numba's own `cache=True` would fail at import there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def compiled(function: F) -> F:
    """`function` compiled in nopython mode, releasing the GIL while it runs."""
    return _njit(function, {})


def compiled_sums(function: F) -> F:
    """`compiled`, and free to add a sum's terms in any order (LLVM's `reassoc`): a dot product
    becomes a vector loop instead of one dependent addition per element, and its last bits
    depend on the CPU's vector width. Only for sums whose rounding decides nothing that a test
    or a user holds exact."""
    return _njit(function, {"fastmath": {"reassoc"}})


def _njit(function: F, options: dict[str, Any]) -> F:
    try:
        return cast(F, numba.njit(cache=True, nogil=True, **options)(function))
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return cast(F, numba.njit(nogil=True, **options)(function))
