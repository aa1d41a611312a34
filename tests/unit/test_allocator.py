"""The worker's allocator setting: set on glibc, left alone when the environment sets it."""

from __future__ import annotations

import sys

import pytest

from streams.allocator import heap_bytes, keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert keep_freed_memory()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not keep_freed_memory()


RELEASE = """
import numpy as np
from streams.allocator import keep_freed_memory, release_freed_memory

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

assert keep_freed_memory()
arrays = [np.ones(1 << 18, np.float32) for _ in range(200)]  # 200 x 1 MB from the heap
arrays = arrays[-1:]  # all freed but the newest, which pins the heap's top
held = rss_mb()
assert release_freed_memory()
print(held - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_pages_inside_the_heap_go_back_to_the_kernel() -> None:
    """What `keep_freed_memory` keeps, and what sits below a live allocation (no trim at the
    top reaches it), is handed back: in a process of its own, so no other test's heap counts."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, check=True)
    assert float(done.stdout) > 150  # of the 199 MB freed


HEAP = """
import numpy as np
from streams.allocator import heap_bytes, keep_freed_memory

assert keep_freed_memory()  # 1 MB arrays from the heap, not mmaps of their own
before = heap_bytes()
arrays = [np.ones(1 << 18, np.float32) for _ in range(64)]  # 64 MB in use
held = heap_bytes()
arrays = arrays[1::2]  # every other one freed: 32 MB of holes between live chunks
holes = heap_bytes()
print((held["in_use"] - before["in_use"]) >> 20, (held["in_use"] - holes["in_use"]) >> 20,
      (holes["free"] - held["free"]) >> 20)
"""


@pytest.mark.skipif(not heap_bytes(), reason="glibc's mallinfo2 (glibc 2.33 and later)")
def test_the_heap_tells_memory_in_use_from_freed_memory_it_keeps() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-c", HEAP], capture_output=True, text=True, check=True)
    grown, freed, holes = map(int, done.stdout.split())
    assert 63 <= grown <= 66 and 31 <= freed <= 33 and holes >= 31
