"""Wire formats (JSON, UTF-8) and their validation: bytes in, a typed record or a reason out."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from cf.serving import Ranked
from cf.weights import EVENT_TYPES

MAX_ID_CHARS = 256
MAX_TAGS = 64
DELETE_USER = "delete_user"  # an erasure request (or, with if_idle_since_ms, an expiry)
ERASURE_REASONS = ("requested", "expired")


class Invalid(ValueError):
    """A record that cannot be processed; `reason` is a short label (a metric label value)."""

    REASONS = (
        "bad_json", "not_object", "missing_field", "unknown_type", "wrong_type", "bad_value",
        "key_mismatch",
    )

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in self.REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Event:
    """`interests.events`, key = user id."""

    event_id: str
    user_id: str
    type: str
    ts: int  # event time, epoch ms
    item_id: str | None = None
    text: str | None = None
    rating: float | None = None
    if_idle_since_ms: int | None = None  # delete_user only: erase only if no event merged after it

    @property
    def erasure_reason(self) -> str:
        return "requested" if self.if_idle_since_ms is None else "expired"


@dataclass(frozen=True)
class Item:
    """`interests.items`, key = item id; a null value (tombstone) removes the item."""

    item_id: str
    title: str
    ts: int
    text: str | None = None
    tags: tuple[str, ...] = ()


def _object(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise Invalid("bad_json", "empty value")
    try:
        obj = orjson.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5,000-digit number, deep nesting
        raise Invalid("bad_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise Invalid("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _id(obj: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise Invalid("missing_field", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Invalid("wrong_type", f"{name} must be a string or an integer")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        raise Invalid("bad_value", f"{name} must be 1..{MAX_ID_CHARS} characters")
    if "\x00" in text:
        raise Invalid("bad_value", f"{name} must not contain NUL")
    return text


@dataclass(frozen=True)
class TimeBounds:
    """Event times an event may carry. Too early is almost always seconds sent as milliseconds;
    too far ahead would move a user's decay clock past every later event."""

    now_ms: int  # the receiving clock
    min_ms: int = 0
    max_ahead_ms: int = 86_400_000


def _ts(obj: dict[str, Any], bounds: TimeBounds | None = None) -> int:
    value = obj.get("ts")
    if value is None:
        raise Invalid("missing_field", "ts is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("wrong_type", "ts must be an integer (epoch milliseconds)")
    if value < 0:
        raise Invalid("bad_value", "ts must not be negative")
    if bounds is not None:
        if value < bounds.min_ms:
            raise Invalid("bad_value", f"ts {value} is before {bounds.min_ms}: seconds, not milliseconds?")
        if value > bounds.now_ms + bounds.max_ahead_ms:
            raise Invalid("bad_value", f"ts {value} is more than {bounds.max_ahead_ms // 1000} s "
                          "ahead of the receiving clock")
    return value


def _text(obj: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("wrong_type", f"{name} must be a string")
    if not value.strip():
        return None
    if len(value) > max_chars:
        raise Invalid("bad_value", f"{name} longer than {max_chars} characters")
    return value


def _key_matches(key: bytes | None, expected: str, name: str) -> None:
    if key is None or key.decode("utf-8", "replace") != expected:
        raise Invalid("key_mismatch", f"message key must equal {name} (it routes the partition)")


def parse_event(key: bytes | None, raw: bytes | None, *, max_text_chars: int = 2000,
                bounds: TimeBounds | None = None) -> Event:
    obj = _object(raw)
    user_id = _id(obj, "user_id", required=True)
    event_id = _id(obj, "event_id", required=True)
    etype = obj.get("type")
    if etype is None:
        raise Invalid("missing_field", "type is required")
    if not isinstance(etype, str):
        raise Invalid("wrong_type", "type must be a string")
    if etype == DELETE_USER:
        return _deletion(key, obj, user_id, event_id, bounds)
    if etype not in EVENT_TYPES:
        known = ", ".join((*EVENT_TYPES, DELETE_USER))
        raise Invalid("unknown_type", f"type {etype!r} is not one of {known}")
    ts = _ts(obj, bounds)
    item_id = _id(obj, "item_id", required=False)
    text = _text(obj, "text", max_text_chars)
    if item_id is None and text is None:
        raise Invalid("missing_field", "an event needs an item_id or a text")
    if etype == "search" and text is None:
        raise Invalid("missing_field", "a search needs a text")
    rating = obj.get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, int | float):
            raise Invalid("wrong_type", "rating must be a number")
        if not math.isfinite(rating) or not 0 <= rating <= 5:
            raise Invalid("bad_value", "rating must lie in [0, 5]")
        rating = float(rating)
    elif etype == "rate":
        raise Invalid("missing_field", "a rate event needs a rating")
    assert user_id is not None and event_id is not None
    _key_matches(key, user_id, "user_id")
    return Event(event_id, user_id, etype, ts, item_id, text, rating)


def _deletion(key: bytes | None, obj: dict[str, Any], user_id: str | None, event_id: str | None,
              bounds: TimeBounds | None) -> Event:
    ts = _ts(obj, bounds)
    idle = obj.get("if_idle_since_ms")
    if idle is not None and (isinstance(idle, bool) or not isinstance(idle, int) or idle < 0):
        raise Invalid("wrong_type", "if_idle_since_ms must be a non-negative integer (epoch ms)")
    assert user_id is not None and event_id is not None
    _key_matches(key, user_id, "user_id")
    return Event(event_id, user_id, DELETE_USER, ts, if_idle_since_ms=idle)


def deletion(user_id: str, ts_ms: int, if_idle_since_ms: int | None = None) -> bytes:
    """A `delete_user` event: an erasure request, or an expiry when `if_idle_since_ms` is set."""
    event_id = f"delete-{ts_ms}" if if_idle_since_ms is None else f"expire-{if_idle_since_ms}"
    body: dict[str, Any] = {"event_id": event_id, "user_id": user_id, "type": DELETE_USER, "ts": ts_ms}
    if if_idle_since_ms is not None:
        body["if_idle_since_ms"] = if_idle_since_ms
    return dumps(body)


def parse_item(key: bytes | None, raw: bytes | None, *, max_text_chars: int = 2000) -> Item | None:
    """None for a tombstone (null value): the item keyed by `key` is removed."""
    if raw is None:
        if not key:
            raise Invalid("missing_field", "a tombstone needs the item id as its key")
        return None
    obj = _object(raw)
    item_id = _id(obj, "item_id", required=True)
    title = _text(obj, "title", max_text_chars)
    if title is None:
        raise Invalid("missing_field", "title is required")
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise Invalid("wrong_type", "tags must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise Invalid("bad_value", f"at most {MAX_TAGS} tags")
    assert item_id is not None
    _key_matches(key, item_id, "item_id")
    return Item(item_id, title, _ts(obj), _text(obj, "text", max_text_chars), tuple(tags))


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON (orjson: the hot path writes one or two records per event)."""
    return orjson.dumps(obj)


Listed = tuple[str, float] | tuple[str, float, dict[str, object]]  # item id, score[, because]


def recommendation(
    user_id: str, ts_ms: int, event_id: str, items: list[Listed], model: str,
    new_items: list[Listed] | None = None,
) -> bytes:
    """`interests.recommendations`, key = user id."""
    def entry(listed: Listed) -> dict[str, object]:
        out: dict[str, object] = {"item_id": listed[0], "score": round(listed[1], 6)}
        if len(listed) > 2:
            out["because"] = listed[2]
        return out

    return dumps(
        {
            "user_id": user_id,
            "ts": ts_ms,
            "event_id": event_id,
            "items": [entry(x) for x in items],
            "new_items": [entry(x) for x in new_items or []],
            "model": model,
        }
    )


def ranked_recommendation(user_id: str, ts_ms: int, event_id: str, ranked: Ranked, model: str) -> bytes:
    """`recommendation` of a user's `cf.serving.Ranked` lists, with why each item is there."""
    items: list[Listed] = [(s.item_id, s.score, w.to_json())
                           for s, w in zip(ranked.items, ranked.because, strict=True)]
    new: list[Listed] = [(s.item_id, s.score, w.to_json())
                         for s, w in zip(ranked.new_items, ranked.new_because, strict=True)]
    return recommendation(user_id, ts_ms, event_id, items, model, new_items=new)


def dead_letter(
    reason: str, detail: str, topic: str, partition: int, offset: int,
    key: bytes | None, value: bytes | None, ts_ms: int,
) -> bytes:
    """`interests.dlq`: the original bytes (base64), why, and where they came from."""
    return dumps(
        {
            "reason": reason,
            "detail": detail,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key_b64": None if key is None else base64.b64encode(key).decode("ascii"),
            "value_b64": None if value is None else base64.b64encode(value).decode("ascii"),
            "ts": ts_ms,
        }
    )


def item_vector(item_id: str, title: str, vector: npt.NDArray[np.float32], space: str, ts_ms: int,
                document: str = "") -> bytes:
    """`interests.item-vectors`, key = item id: one embedded catalog item (float32 LE, base64),
    with the document it embeds, so a worker with another encoder can re-embed it."""
    return dumps(
        {
            "item_id": item_id,
            "title": title,
            "document": document,
            "space": space,
            "dim": int(vector.shape[0]),
            "vector_b64": base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii"),
            "ts": ts_ms,
        }
    )


class ItemVector(NamedTuple):
    item_id: str
    title: str
    space: str
    vector: npt.NDArray[np.float32]  # (D,) float32
    document: str  # the embedded text; "" in records written before it was carried


def parse_item_vector(raw: bytes) -> ItemVector:
    obj = orjson.loads(raw)
    vector = np.frombuffer(base64.b64decode(obj["vector_b64"]), dtype="<f4").astype(np.float32)
    if vector.shape != (obj["dim"],):
        raise ValueError("vector length does not match dim")
    return ItemVector(str(obj["item_id"]), str(obj.get("title", "")), str(obj["space"]), vector,
                      str(obj.get("document", "")))
