"""The process's memory allocator, tuned for a worker that allocates the same few-megabyte arrays
batch after batch.

glibc returns freed memory at the top of its heap to the kernel once more than 128 KB-32 MB is
free there (M_TRIM_THRESHOLD), and serves large arrays from fresh mmaps (M_MMAP_THRESHOLD): each
batch's arrays then come back as new pages, and every page is faulted in and zeroed again. On a
batch of 80 users' lists that was half the time of the sequential model's forward pass
(`interests bench batch`). Keeping freed memory for reuse holds the heap at its peak working set
instead. MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ in the environment still take precedence.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
TRIM_BYTES = 256 << 20  # free memory kept at the heap's top before it goes back to the kernel
MMAP_BYTES = 32 << 20  # arrays below this come from the heap (glibc's largest allowed on 64-bit)


def keep_freed_memory() -> bool:
    """Sets the thresholds on glibc (Linux); True when set. Elsewhere, or when the environment
    already sets them, it changes nothing."""
    if not sys.platform.startswith("linux") or any(
            name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES))
    log.debug("allocator: keep freed memory up to %d MB: %s", TRIM_BYTES >> 20, done)
    return done
