from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from cf.explain import Because
from cf.scoring import Scored
from cf.serving import Ranked
from streams.records import (
    Invalid,
    dead_letter,
    deletion,
    item_vector,
    parse_event,
    parse_item,
    parse_item_vector,
    ranked_recommendation,
    recommendation,
)


def raw(**fields: object) -> bytes:
    return json.dumps(fields).encode()


GOOD = {"event_id": "e1", "user_id": "u1", "type": "click", "item_id": "42", "ts": 1700000000000}


def test_a_good_event_parses() -> None:
    event = parse_event(b"u1", raw(**GOOD))
    assert (event.user_id, event.type, event.item_id, event.ts) == ("u1", "click", "42", 1700000000000)


def test_integer_ids_are_read_as_strings_and_searches_carry_text() -> None:
    event = parse_event(b"7", raw(event_id=1, user_id=7, type="search", text="space opera", ts=5))
    assert (event.user_id, event.event_id, event.text, event.item_id) == ("7", "1", "space opera", None)
    rated = parse_event(b"7", raw(event_id=2, user_id=7, type="rate", item_id=3, rating=4.5, ts=5))
    assert rated.rating == 4.5


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"u1", b"{not json", "bad_json"),
        (b"u1", b"\xff\xfe", "bad_json"),
        (b"u1", None, "bad_json"),
        (b"u1", b"[1, 2]", "not_object"),
        (b"u1", raw(**{**GOOD, "user_id": None}), "missing_field"),
        (b"u1", raw(**{k: v for k, v in GOOD.items() if k != "event_id"}), "missing_field"),
        (b"u1", raw(**{k: v for k, v in GOOD.items() if k != "item_id"}), "missing_field"),
        (b"u1", raw(**{**GOOD, "type": "teleport"}), "unknown_type"),
        (b"u1", raw(**{**GOOD, "type": 3}), "wrong_type"),
        (b"u1", raw(**{**GOOD, "ts": "yesterday"}), "wrong_type"),
        (b"u1", raw(**{**GOOD, "ts": 1.5}), "wrong_type"),
        (b"u1", raw(**{**GOOD, "ts": True}), "wrong_type"),
        (b"u1", raw(**{**GOOD, "item_id": [1]}), "wrong_type"),
        (b"u1", raw(**{**GOOD, "text": 5}), "wrong_type"),
        (b"u1", raw(**{**GOOD, "ts": -1}), "bad_value"),
        (b"u1", raw(**{**GOOD, "type": "rate"}), "missing_field"),
        (b"u1", raw(**{**GOOD, "rating": 11}), "bad_value"),
        (b"u1", raw(**{**GOOD, "rating": "5"}), "wrong_type"),
        (b"u1", raw(**{**GOOD, "type": "search", "item_id": None}), "missing_field"),
        (b"u1", raw(**{**GOOD, "user_id": "x" * 300}), "bad_value"),
        (b"u1", raw(**{**GOOD, "item_id": "a\x00b"}), "bad_value"),  # NUL separates ids in the state
        (b"someone-else", raw(**GOOD), "key_mismatch"),
        (None, raw(**GOOD), "key_mismatch"),
    ],
)
def test_bad_events_name_their_reason(key: bytes | None, value: bytes | None, reason: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_event(key, value)
    assert caught.value.reason == reason


def test_items_and_tombstones() -> None:
    item = parse_item(b"9", raw(item_id=9, title="Alien (1979)", tags=["Horror", "Sci-Fi"], ts=0))
    assert item is not None and item.tags == ("Horror", "Sci-Fi")
    assert parse_item(b"9", None) is None
    with pytest.raises(Invalid, match="tags"):
        parse_item(b"9", raw(item_id=9, title="x", tags="Horror", ts=0))
    with pytest.raises(Invalid, match="title"):
        parse_item(b"9", raw(item_id=9, ts=0))


def test_output_records() -> None:
    rec = json.loads(recommendation("u1", 5, "e1", [("a", 0.91234567)], "m+s", new_items=[("n", 1.0)]))
    assert rec == {"user_id": "u1", "ts": 5, "event_id": "e1",
                   "items": [{"item_id": "a", "score": 0.912346}],
                   "new_items": [{"item_id": "n", "score": 1.0}], "model": "m+s"}
    # a served list: each item with why it is there, the same record as `recommendation` writes
    top = [Scored("a", 0.91234567), Scored("b", 0.5)]
    why = [Because(0, ("h1", "h2"), {"text": 1.2345, "cooc": -0.5}), Because(1, (), {"text": 0.0})]
    ranked = Ranked(top, [Scored("n", 0.25)], why, [Because(0, ("h3",), {"text": 2.5})])
    served = ranked_recommendation("u1", 5, "e1", ranked, "m+s")
    listed = [(s.item_id, s.score, w.to_json()) for s, w in zip(top, why, strict=True)]
    assert served == recommendation("u1", 5, "e1", listed, "m+s",
                                    new_items=[("n", 0.25, ranked.new_because[0].to_json())])
    assert json.loads(served)["items"][0] == {"item_id": "a", "score": 0.912346, "because": {
        "interest": 0, "history": ["h1", "h2"], "components": {"text": 1.2345, "cooc": -0.5}}}
    dlq = json.loads(dead_letter("bad_json", "x", "t", 1, 7, b"k", b"\xff", 9))
    assert base64.b64decode(dlq["value_b64"]) == b"\xff"
    assert (dlq["topic"], dlq["partition"], dlq["offset"], dlq["reason"]) == ("t", 1, 7, "bad_json")
    v = np.linspace(-1, 1, 6).astype(np.float32)
    item_id, title, space, back, document = parse_item_vector(item_vector("i", "T", v, "m@1", 0, "T. Drama"))
    assert (item_id, title, space, document) == ("i", "T", "m@1", "T. Drama")
    np.testing.assert_array_equal(back, v)


def test_erasure_requests_and_expiries_parse() -> None:
    asked = parse_event(b"u1", raw(event_id="d1", user_id="u1", type="delete_user", ts=5))
    assert (asked.type, asked.if_idle_since_ms, asked.erasure_reason, asked.item_id) == (
        "delete_user", None, "requested", None)
    expiry = parse_event(b"u1", deletion("u1", ts_ms=9, if_idle_since_ms=4))
    assert (expiry.if_idle_since_ms, expiry.erasure_reason, expiry.ts) == (4, "expired", 9)
    with pytest.raises(Invalid, match="wrong_type"):
        parse_event(b"u1", raw(event_id="d", user_id="u1", type="delete_user", ts=5, if_idle_since_ms="x"))
    with pytest.raises(Invalid, match="key_mismatch"):
        parse_event(b"u2", raw(event_id="d", user_id="u1", type="delete_user", ts=5))
