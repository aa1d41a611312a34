"""Table writes for keys other than the batch's last event land in their own partition.

A Faust Table takes the changelog partition and the RocksDB partition of a write from the
*current event*. Inside `stream.take_events()` that is the batch's last event, so a write for
another user would silently land in the wrong partition and be lost to recovery and rebalance.
faust-streaming 0.15 keeps the current event in `faust.streams._current_event` (a ContextVar):
we set it to an event of the key being written for the duration of the write.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust.streams


@contextmanager
def event_context(event: Any) -> Iterator[None]:
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)
