"""Hypothesis strategies for event payloads: good ones, and bad ones each with the reason the
engine must give (one broken thing per payload)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from cf.weights import EVENT_TYPES
from streams.records import TimeBounds

MAX_TEXT = 2000
MARGIN_MS = 3_600_000  # future times start this far past the bound: the receiving clock runs on
ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1,
              max_size=40)


@st.composite
def good_events(draw: st.DrawFn, bounds: TimeBounds) -> dict[str, Any]:
    etype = draw(st.sampled_from(EVENT_TYPES))
    event: dict[str, Any] = {"event_id": draw(ids), "user_id": draw(ids), "type": etype,
                             "ts": draw(st.integers(bounds.min_ms, bounds.now_ms))}
    if etype == "search":
        event["text"] = draw(st.text(min_size=1, max_size=80).filter(str.strip))
    else:
        event["item_id"] = draw(ids)
    if etype == "rate":
        event["rating"] = draw(st.floats(0, 5))
    return event


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode("utf-8")


# one broken thing each, with the reason it must get: (key, value, reason)
@st.composite
def bad_payloads(draw: st.DrawFn, bounds: TimeBounds) -> tuple[bytes | None, bytes | None, str]:
    good = draw(good_events(bounds))
    key = good["user_id"].encode("utf-8")
    kind = draw(st.sampled_from([
        "not_json", "bad_utf8", "not_object", "missing", "empty_id", "wrong_type", "unknown_type",
        "huge_text", "future", "past", "key_mismatch", "deep", "long_number", "nul_in_id",
    ]))
    if kind == "not_json":
        return key, draw(st.binary(min_size=1).filter(lambda b: not _is_json(b))), "bad_json"
    if kind == "bad_utf8":
        return key, b"\xff\xfe" + _encode(good), "bad_json"
    if kind == "not_object":
        value = draw(st.one_of(st.lists(st.integers()), st.integers(), st.text(), st.none()))
        return key, json.dumps(value).encode(), "not_object"
    if kind == "missing":
        field = draw(st.sampled_from(["event_id", "user_id", "type", "ts"]))
        return key, _encode({k: v for k, v in good.items() if k != field}), "missing_field"
    if kind == "empty_id":
        field = draw(st.sampled_from(["event_id", "user_id"]))
        return key, _encode({**good, field: ""}), "bad_value"
    if kind == "nul_in_id":
        field = draw(st.sampled_from(["event_id", "user_id"]))
        return key, _encode({**good, field: good[field] + "\x00"}), "bad_value"
    if kind == "wrong_type":
        field = draw(st.sampled_from(["event_id", "user_id", "ts"]))
        value = draw(st.one_of(st.lists(st.integers(), max_size=2), st.booleans(), st.floats(0.5, 9.5),
                               st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
        return key, _encode({**good, field: value}), "wrong_type"
    if kind == "unknown_type":
        return key, _encode({**good, "type": draw(st.text().filter(lambda t: t not in EVENT_TYPES))}), \
            "unknown_type"
    if kind == "huge_text":
        return key, _encode({**good, "text": "x" * draw(st.integers(MAX_TEXT + 1, 50_000))}), "bad_value"
    if kind == "future":
        ts = draw(st.integers(bounds.now_ms + bounds.max_ahead_ms + MARGIN_MS, 2**62))
        return key, _encode({**good, "ts": ts}), "bad_value"
    if kind == "past":
        return key, _encode({**good, "ts": draw(st.integers(0, bounds.min_ms - 1))}), "bad_value"
    if kind == "key_mismatch":
        other = draw(st.one_of(st.none(), st.binary(max_size=20)).filter(lambda k: k != key))
        return other, _encode(good), "key_mismatch"
    if kind == "deep":
        depth = draw(st.integers(2_000, 200_000))
        return key, b"[" * depth + b"]" * depth, "bad_json"
    return key, b'{"ts": ' + b"9" * draw(st.integers(5_000, 20_000)) + b"}", "bad_json"


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return True
