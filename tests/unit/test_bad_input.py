"""Property-based: whatever bytes arrive, validation answers with an event or a named reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.records import Event, Invalid, TimeBounds, dead_letter, parse_event
from tests.payloads import MAX_TEXT, bad_payloads, good_events

NOW = 1_800_000_000_000  # ms
BOUNDS = TimeBounds(now_ms=NOW, min_ms=100_000_000_000, max_ahead_ms=86_400_000)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_payloads(BOUNDS))
def test_every_bad_payload_gets_its_reason(payload: tuple[bytes | None, bytes | None, str]) -> None:
    key, value, reason = payload
    with pytest.raises(Invalid) as caught:
        parse_event(key, value, max_text_chars=MAX_TEXT, bounds=BOUNDS)
    assert caught.value.reason == reason, caught.value
    letter = json.loads(dead_letter(caught.value.reason, caught.value.detail, "t", 0, 1, key, value, NOW))
    assert letter["reason"] == reason  # the dead letter itself is always valid JSON


@settings(max_examples=300, deadline=None)
@given(good_events(BOUNDS))
def test_every_good_event_is_accepted(event: dict[str, Any]) -> None:
    parsed = parse_event(event["user_id"].encode("utf-8"), json.dumps(event).encode(),
                         max_text_chars=MAX_TEXT, bounds=BOUNDS)
    assert isinstance(parsed, Event)
    assert (parsed.user_id, parsed.ts) == (event["user_id"], event["ts"])


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=40)), st.one_of(st.none(), st.binary(max_size=300)))
def test_any_bytes_give_an_event_or_a_reason(key: bytes | None, value: bytes | None) -> None:
    try:
        parse_event(key, value, bounds=BOUNDS)
    except Invalid as error:
        assert error.reason in Invalid.REASONS
