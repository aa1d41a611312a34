"""The garbage collector's start-up freeze and its pause metric (streams/collector.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.collector import YOUNG_THRESHOLD, PauseWatch, freeze_start_up
from streams.metrics import Metrics


@pytest.fixture()
def unfrozen() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()  # the other tests' objects go back to the collected generations
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def test_the_watch_times_every_collection_by_generation() -> None:
    seen: list[tuple[int, float]] = []
    with PauseWatch(lambda generation, seconds: seen.append((generation, seconds))):
        gc.collect(0)
        gc.collect(2)
    gc.collect(2)  # after the watch stopped: not seen
    assert [g for g, _ in seen] == [0, 2]
    assert all(s >= 0 for _, s in seen)


def test_frozen_objects_leave_later_collections_but_are_still_freed(unfrozen: None) -> None:
    before = Node()
    middle, old = gc.get_threshold()[1:]
    frozen = freeze_start_up()
    assert frozen > 0 and gc.get_freeze_count() == frozen
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)  # young collections made rarer
    walked = {id(o) for o in gc.get_objects()}  # what a collection walks
    assert id(before) not in walked
    after = Node()
    assert id(after) in {id(o) for o in gc.get_objects()}
    # reference counting still frees a frozen object once its last reference goes
    gone = weakref.ref(before)
    del before
    assert gone() is None


def test_cycles_made_after_the_freeze_are_collected(unfrozen: None) -> None:
    freeze_start_up()
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    gone = weakref.ref(a)
    del a, b
    kept = [[] for _ in range(2 * YOUNG_THRESHOLD)]  # containers made and held: the collector runs
    assert gone() is None and len(kept) == 2 * YOUNG_THRESHOLD


def test_pauses_are_a_metric_from_the_start() -> None:
    metrics = Metrics.create()
    count = metrics.registry.get_sample_value
    assert count("interests_gc_pause_seconds_count", {"generation": "2"}) == 0
    metrics.observe_gc(2, 0.004)
    assert count("interests_gc_pause_seconds_count", {"generation": "2"}) == 1
    assert count("interests_gc_pause_seconds_bucket", {"generation": "2", "le": "0.005"}) == 1
    assert count("interests_gc_pause_seconds_bucket", {"generation": "2", "le": "0.0025"}) == 0
