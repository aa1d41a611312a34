"""The process's memory allocator, tuned for a worker that allocates the same few-megabyte arrays
batch after batch.

glibc returns freed memory at the top of its heap to the kernel once more than 128 KB-32 MB is
free there (M_TRIM_THRESHOLD), and serves large arrays from fresh mmaps (M_MMAP_THRESHOLD): each
batch's arrays then come back as new pages, and every page is faulted in and zeroed again. On a
batch of 80 users' lists that was half the time of the sequential model's forward pass
(`interests bench batch`). Keeping freed memory for reuse holds the heap at its peak working set
instead. MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ in the environment still take precedence.

What is kept is not only the top of the heap: as long-lived allocations (RocksDB's blocks and
memtables, replicated rows) land among a batch's short-lived ones, freed holes pile up inside
the heap, and the RSS follows the history of peaks rather than the working set. Every
`INTERESTS_MALLOC_TRIM_S` the worker hands the whole pages of those holes back
(`release_freed_memory`, glibc's malloc_trim); between two calls batches still reuse freed memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
TRIM_BYTES = 256 << 20  # free memory kept at the heap's top before it goes back to the kernel
MMAP_BYTES = 32 << 20  # arrays below this come from the heap (glibc's largest allowed on 64-bit)


@functools.cache  # finding it runs ldconfig in a subprocess: once per process
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc on Linux (it has mallopt and malloc_trim); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        libc = ctypes.CDLL(path)
        libc.mallopt, libc.malloc_trim  # noqa: B018  (musl has neither)
    except (OSError, AttributeError):
        return None
    return libc


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (malloc.h, glibc 2.33 and later): every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def heap_bytes() -> dict[str, int]:
    """glibc's heap over all its arenas (mallinfo2): bytes handed out ("in_use"), bytes freed but
    kept in it ("free": holes between live chunks, the top not yet trimmed), and chunks served
    from mmaps of their own ("mapped"). A "free" that grows while "in_use" does not is
    fragmentation. {} where glibc is not the allocator or lacks mallinfo2. Walks every arena's
    free lists, holding each arena's lock: 12 ms measured on a heap of 11 GB riddled with tens of
    thousands of holes (a worker's is about 200 MB); call it off the event loop."""
    libc = _glibc()
    mallinfo2 = getattr(libc, "mallinfo2", None) if libc is not None else None
    if mallinfo2 is None:
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {"in_use": int(info.uordblks), "free": int(info.fordblks), "mapped": int(info.hblkhd)}


def release_freed_memory() -> bool:
    """Free pages inside the heap go back to the kernel (malloc_trim(0): every arena, not only its
    top); True when some did. A few ms for a worker's heap: call it off the event loop."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def keep_freed_memory() -> bool:
    """Sets the thresholds on glibc (Linux); True when set. Elsewhere, or when the environment
    already sets them, it changes nothing."""
    if any(name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and done
    log.debug("allocator: keep freed memory up to %d MB: %s", TRIM_BYTES >> 20, done)
    return done
