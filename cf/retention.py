"""How long a user's state lives: erasure on request, and expiry after a time without events.

Both are one transition, `erase(state, if_idle_since_ms) -> state | None`: an erasure request
removes the state unconditionally; an expiry removes it only if no event was merged after the
time the expiry was decided on, so a user who came back in between keeps their state.

Expiry runs on stream time, not the wall clock: a partition's stream time is the newest event
time seen on it, so a replay of old data ages users as the data does, and a stalled producer
does not expire everyone.
"""

from __future__ import annotations

from cf.state import UserState


def expired(updated_ms: int, stream_ms: int, ttl_s: float) -> bool:
    """A user whose newest event is more than `ttl_s` behind the stream time; ttl_s <= 0: never."""
    return ttl_s > 0 and stream_ms - updated_ms > ttl_s * 1000.0


def erase(state: UserState | None, if_idle_since_ms: int | None) -> UserState | None:
    """None (the state goes) unless the erasure is conditional (an expiry) and the user merged
    an event after `if_idle_since_ms`."""
    if state is not None and if_idle_since_ms is not None and state.updated_ms > if_idle_since_ms:
        return state
    return None
