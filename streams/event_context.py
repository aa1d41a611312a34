"""Table writes for keys other than the batch's last event land in their own partition.

A Faust Table takes the changelog partition and the RocksDB partition of a write from the
*current event*, and its RocksDB store reads only the current event's partition. Inside
`stream.take_events()` the current event is the batch's last one, so a write for another user
would silently land in the wrong partition (lost to recovery and rebalance) and a read would
miss the user's state. faust-streaming 0.15 keeps the current event in
`faust.streams._current_event` (a ContextVar): we set it to an event of the key being read or
written for the duration of the call.
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
