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
    try:
        return cast(F, numba.njit(cache=True, nogil=True)(function))
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return cast(F, numba.njit(nogil=True)(function))
