from __future__ import annotations

import numpy as np

from cf.retention import erase, expired
from cf.state import UserState

DAY_MS = 86_400_000


def test_expiry_is_measured_on_stream_time_and_can_be_off() -> None:
    assert expired(updated_ms=0, stream_ms=31 * DAY_MS, ttl_s=30 * 86_400)
    assert not expired(updated_ms=0, stream_ms=30 * DAY_MS, ttl_s=30 * 86_400)  # exactly the ttl
    assert not expired(updated_ms=0, stream_ms=10**15, ttl_s=0)  # off


def test_an_erasure_request_removes_the_state_and_an_expiry_spares_a_returning_user() -> None:
    state = UserState(vector=np.ones(4, np.float32), updated_ms=5_000, events=3)
    assert erase(state, None) is None  # requested: unconditional
    assert erase(state, if_idle_since_ms=5_000) is None  # still idle since then: expires
    assert erase(state, if_idle_since_ms=4_999) is state  # an event merged after the decision
    assert erase(None, 5_000) is None
