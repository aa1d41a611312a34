"""Python's cyclic garbage collector in a long-running worker.

A full (generation 2) collection walks every container object the process holds. A started
worker holds about 100k of them from its imports and its start (modules, functions, classes,
Faust's and aiokafka's structures), and none of them ever becomes garbage. Measured with
`interests bench soak --broker kafka`: a full collection stalled the event loop for 30-43 ms, about
every 10 s, and that stall landed on the p99 of the lists published around it.

Once the worker is up (its catalog and neighbour copies loaded), `gc.freeze()` moves those objects
to the permanent generation, which no collection walks. In the same soak, full collections then
took 3-4 ms. Objects made later are collected as before. A frozen object is still freed when its
last reference goes (reference counting), so the only thing that could stay is a cycle among
start-up objects.

A young collection runs whenever container objects made outnumber those freed by 700 (Python's
default), and a batch of 80 users makes thousands before it frees them: in `interests bench batch
--order interleaved` the collector took about 2 ms of a batch's 25 (0.9 young, 0.35 middle, 0.8
full), finding almost nothing, since reference counting frees nearly every object of a batch.
With the young threshold at 10,000 it ran a handful of times in the whole bench (the stage's compute
279-292 us per event against 304-310). Cycles are still collected, a little later: at most about
10,000 objects of garbage wait for it.

Every collection's pause is observed (`interests_gc_pause_seconds`, by generation), so an operator
sees the stall if it comes back.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
Observe = Callable[[int, float], None]  # (generation, seconds)


YOUNG_THRESHOLD = 10_000  # container objects made, less those freed, before a young collection


def freeze_start_up() -> int:
    """Collect what start-up left behind, freeze the rest out of later collections, and collect
    the young generation only every `YOUNG_THRESHOLD` objects. Returns the number of objects frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    frozen = gc.get_freeze_count()
    log.info("garbage collector: %d start-up objects frozen out of later collections", frozen)
    return frozen


class PauseWatch:
    """Times every collection (`gc.callbacks`) and hands (generation, seconds) to `observe`."""

    def __init__(self, observe: Observe) -> None:
        self.observe = observe
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.observe(int(info["generation"]), time.perf_counter() - self._started)

    def start(self) -> PauseWatch:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def stop(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def __enter__(self) -> PauseWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
