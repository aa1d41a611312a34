"""A user's interest state and its compact byte form (what the changelog carries)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatVec = npt.NDArray[np.float32]

# Layout, little-endian (format 5, or 7 with searches; formats 1 to 4 are still read):
#   header    <B H q I H H H d B  format version, D, updated_ms, events, n_history, n_seen,
#                                 n_shown, weight_sum, n_interests
#   interests n_interests x <d f B  weight_sum, activity, n_items
#   vectors   n_interests x D float16, one (K, D) block
#   texts     <I byte length, then UTF-8 of every id joined by NUL: the interests' item ids
#             (in order), history (oldest first), seen (oldest first), shown (best first), and
#             the name of the vector space (encoder version)
# One block each way: a state is decoded and encoded with a handful of calls whatever its
# history's length (the worker does both for every user of every batch). A state holding an id
# with a NUL in it (the wire formats refuse them) is written in format 4, which is:
#   header    as format 5, version 4
#   interests n_interests x (<d f B  weight_sum, activity, n_items;  D x float16 vector;
#                                    n_items x (u16 length + UTF-8 item id))
#   history, seen, shown, space: each id as u16 length + UTF-8
# A user with recent searches (`searches`) has them after either layout, and the format byte says
# so (7: format 5's layout, 6: format 4's):
#   searches  <B n_searches, n_searches x <H after, then n_searches x D float16, one (S, D) block
# so a state without searches keeps its bytes, and a reader of formats up to 5 refuses the rest.
# The user's single vector is not stored: the interests partition it (`cf.interests`), so it is
# their sum. Formats 1-3 stored that one vector (1-2 as float32, 3 as float16) and no interests:
# it is read back as the user's only interest.
# float16 keeps 11 significant bits: each component within 2^-11 of its value relative, so a
# stored vector's cosine to the float32 one is >= 1 - 2^-23 per write; `interests bench state`
# measures the drift over a user's whole history of writes (each merge re-rounds).
_FORMAT_VERSION = 5
_WITH_SEARCHES = 2  # added to the format byte when a searches block follows
_SEPARATOR = "\x00"
_TEXT_LENGTH = struct.Struct("<I")
_HEADER = struct.Struct("<BHqIHHHdB")
_HEADER_V3 = struct.Struct("<BHqIHHHd")
_INTEREST = struct.Struct("<dfB")
_HEADER_V1 = struct.Struct("<BHqIHHd")
_LEN = struct.Struct("<H")
_SEARCHES = struct.Struct("<B")
_FLOAT16_MAX = 65504.0


def vector_bytes(dim: int) -> int:
    """Bytes one stored interest vector takes."""
    return 2 * dim


def float16_of(vector: FloatVec) -> npt.NDArray[np.float16]:
    """Vectors as stored: float16, little-endian, clipped to its range."""
    return np.clip(vector, -_FLOAT16_MAX, _FLOAT16_MAX).astype("<f2")


# every float16 (by its 16 bits, little-endian) as float32, from numpy's own conversion: a lookup
# is the same value at about half the time of `astype` (float16 has no vector conversion there)
_HALF_TO_FLOAT = np.arange(1 << 16, dtype="<u2").view("<f2").astype(np.float32)  # (65536,)


def floats_of(data: bytes, count: int, offset: int) -> FloatVec:
    """(count,) float32 of the `count` little-endian float16 at `offset` of `data`."""
    return widened(np.frombuffer(data, dtype="<f2", count=count, offset=offset))


def widened(halves: npt.NDArray[np.float16]) -> FloatVec:
    """float16 vectors (`float16_of`) as float32, the same shape."""
    return _HALF_TO_FLOAT.take(halves.view("<u2"))


class Interest(NamedTuple):  # a tuple: every state read, fold and rounding makes K of these
    """One of a user's interests (`cf.interests`): the decayed sum of the events assigned to it."""

    vector: FloatVec  # (D,) float32, sum over its events of w_i 2^(-(T - t_i)/h) e_i
    weight_sum: float  # the same sum of w_i 2^(-(T - t_i)/h)
    items: tuple[str, ...] = ()  # its most representative items, closest first
    activity: float = 0.0  # sum over its events of r^(events of the user since), how current it is


class Search(NamedTuple):
    """One of a user's recent free-text searches, kept as a position of their item sequence
    (`cf.searches`): the sequential model reads it there as the projection of its text."""

    vector: FloatVec  # (D,) float32 at stored (float16) precision: the search text's vector v_text
    after: int  # items the user consumed since: the search came before the last `after` of history


def stored_precision(rows: FloatVec) -> FloatVec:
    """(K, D) float32 interest rows as they come back from their stored float16."""
    return widened(float16_of(rows))


def sum_rows(rows: FloatVec) -> FloatVec:
    """(D,) float32 sum of the (K, D) interest rows, the user's single vector: a reduction over the
    outer axis adds whole rows one after another, the running total u = (e_1 + e_2) + ... bit for bit."""
    return rows.sum(axis=0, dtype=np.float32) if rows.shape[0] else np.zeros(rows.shape[1], np.float32)


@dataclass(frozen=True)
class UserState:
    """Everything the engine keeps per user.

    vector:     (D,) float32, sum of w_i * 2^(-(updated_ms - t_i)/h) * e_i, not normalised
    weight_sum: sum of w_i * 2^(-(updated_ms - t_i)/h) over the same events (for centring)
    updated_ms: event time (epoch ms) the vector is decayed to; the newest event time merged
    events:     number of events merged
    history:    consumed item ids, oldest first, bounded (excluded from recommendations)
    seen:       ids of the latest events merged, bounded (a redelivered event is skipped)
    space:      the encoder version whose vectors were merged; vectors of two spaces never mix
    shown:      the item ids of the last list published to this user, best first (online quality:
                did the user then take one of them?)
    interests:  up to K interests that partition `vector` and `weight_sum` (`cf.interests`)
    searches:   the latest free-text searches, bounded, oldest first, each where it falls among
                the history's items (`cf.searches`)
    """

    vector: FloatVec
    updated_ms: int
    events: int = 0
    weight_sum: float = 0.0
    history: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()
    space: str = ""
    shown: tuple[str, ...] = ()
    interests: tuple[Interest, ...] = ()
    searches: tuple[Search, ...] = ()
    # the interests' rows as stored ((K, D) float16 bytes), when whoever made them had them at
    # hand (the fold rounds them): valid for this very `interests` tuple only, so a state with
    # other interests (`replace`) encodes its own
    stored_rows: tuple[tuple[Interest, ...], bytes] | None = field(default=None, compare=False, repr=False)

    def as_interests(self) -> tuple[Interest, ...]:
        """The user's interests; a state made from one vector alone is its own only interest."""
        if self.interests or not np.any(self.vector):
            return self.interests
        return (Interest(self.vector, self.weight_sum, (), 1.0),)

    @classmethod
    def empty(cls, dim: int, space: str = "") -> UserState:
        return cls(vector=np.zeros(dim, dtype=np.float32), updated_ms=0, space=space)

    def to_bytes(self, shown: tuple[str, ...] | None = None) -> bytes:
        """The stored bytes; shown: those of this state with that `shown` instead (the worker
        writes each state with the list it has just published, without a copy of the state)."""
        shown = self.shown if shown is None else shown
        interests = self.as_interests()
        version = _FORMAT_VERSION + (_WITH_SEARCHES if self.searches else 0)
        header = _HEADER.pack(version, self.vector.shape[0], self.updated_ms, self.events,
                              len(self.history), len(self.seen), len(shown), self.weight_sum,
                              len(interests))
        ids = [i for k in interests for i in k.items]
        ids += (*self.history, *self.seen, *shown, self.space)
        text = _SEPARATOR.join(ids)
        if text.count(_SEPARATOR) != len(ids) - 1:  # an id holds a NUL: the one-id-at-a-time layout
            return self._format_4(interests, shown) + self._searches_bytes()
        raw = text.encode("utf-8")
        cached = self.stored_rows
        if cached is not None and cached[0] is interests:
            vectors: bytes | npt.NDArray[np.float16] = cached[1]
        else:
            rows = np.array([k.vector for k in interests], np.float32)  # (K, D)
            vectors = float16_of(rows) if interests else b""
        return b"".join([header, *(_INTEREST.pack(k.weight_sum, k.activity, len(k.items)) for k in interests),
                         bytes(vectors), _TEXT_LENGTH.pack(len(raw)), raw, self._searches_bytes()])

    def _searches_bytes(self) -> bytes:
        """The searches block (after either layout); empty without searches."""
        if not self.searches:
            return b""
        vectors = float16_of(np.array([s.vector for s in self.searches], np.float32))  # (S, D)
        after = (_LEN.pack(min(s.after, 0xFFFF)) for s in self.searches)
        return b"".join([_SEARCHES.pack(len(self.searches)), *after, vectors.tobytes()])

    def _format_4(self, interests: tuple[Interest, ...], shown: tuple[str, ...]) -> bytes:
        version = 4 + (_WITH_SEARCHES if self.searches else 0)
        parts = [_HEADER.pack(version, self.vector.shape[0], self.updated_ms, self.events, len(self.history),
                              len(self.seen), len(shown), self.weight_sum, len(interests))]
        for k in interests:
            parts.append(_INTEREST.pack(k.weight_sum, k.activity, len(k.items)))
            parts.append(float16_of(k.vector).tobytes())
            parts.extend(_text(t) for t in k.items)
        parts.extend(_text(t) for t in (*self.history, *self.seen, *shown, self.space))
        return b"".join(parts)

    def rounded(self) -> UserState:
        """This state as `from_bytes(to_bytes())` gives it back: vectors at stored precision."""
        interests = self.as_interests()
        if not interests:
            return replace(self, vector=np.zeros_like(self.vector))
        rows = stored_precision(np.array([k.vector for k in interests], np.float32))  # (K, D)
        rounded = tuple(Interest(rows[n], k.weight_sum, k.items, k.activity) for n, k in enumerate(interests))
        searches = tuple(Search(stored_precision(s.vector), s.after) for s in self.searches)
        return replace(self, interests=rounded, vector=sum_rows(rows), searches=searches)

    @staticmethod
    def updated_ms_of(data: bytes) -> int:
        """`updated_ms` of a stored state without decoding the rest (every format has it here)."""
        return int(struct.unpack_from("<q", data, 3)[0])

    @classmethod
    def from_bytes(cls, data: bytes) -> UserState:
        version = data[0] if data else None
        if version in (6, 7):  # format 4 or 5 with a searches block after it
            state, end = cls._format_5(data) if version == 7 else cls._format_1_to_4(data, 4)
            return replace(state, searches=_searches(data, end, state.vector.shape[0]))
        if version == 5:
            return cls._format_5(data)[0]
        return cls._format_1_to_4(data, version)[0]

    @classmethod
    def _format_1_to_4(cls, data: bytes, version: int | None) -> tuple[UserState, int]:
        """The state of a format 1-4 layout, and the offset after it."""
        n_interests = 0
        if version == 4:
            (_, dim, updated_ms, events, n_history, n_seen, n_shown, weight_sum,
             n_interests) = _HEADER.unpack_from(data, 0)
            offset = _HEADER.size
        elif version in (2, 3):
            (_, dim, updated_ms, events, n_history, n_seen, n_shown,
             weight_sum) = _HEADER_V3.unpack_from(data, 0)
            offset = _HEADER_V3.size
        elif version == 1:
            _, dim, updated_ms, events, n_history, n_seen, weight_sum = _HEADER_V1.unpack_from(data, 0)
            n_shown, offset = 0, _HEADER_V1.size
        else:
            raise ValueError(f"unknown user state format {version}")
        interests: list[Interest] = []
        for _ in range(n_interests):
            k_sum, activity, n_items = _INTEREST.unpack_from(data, offset)
            offset += _INTEREST.size
            k_vector = floats_of(data, dim, offset)  # (D,)
            offset += 2 * dim
            items, offset = _texts(data, offset, n_items)
            interests.append(Interest(k_vector, k_sum, tuple(items), activity))
        if version == 4:
            vector = sum_rows(np.array([k.vector for k in interests], np.float32).reshape(-1, dim))  # (D,)
        else:
            stored = "<f2" if version == 3 else "<f4"
            vector = np.frombuffer(data, dtype=stored, count=dim, offset=offset).astype(np.float32)  # (D,)
            offset += np.dtype(stored).itemsize * dim
        texts, offset = _texts(data, offset, n_history + n_seen + n_shown + 1)
        state = cls(
            vector=vector,
            updated_ms=updated_ms,
            events=events,
            weight_sum=weight_sum,
            history=tuple(texts[:n_history]),
            seen=tuple(texts[n_history : n_history + n_seen]),
            shown=tuple(texts[n_history + n_seen : n_history + n_seen + n_shown]),
            space=texts[-1],
            interests=tuple(interests),
        )
        return (state if version == 4 else replace(state, interests=state.as_interests())), offset

    @classmethod
    def _format_5(cls, data: bytes) -> tuple[UserState, int]:
        """The state of a format 5 layout, and the offset after it."""
        (_, dim, updated_ms, events, n_history, n_seen, n_shown, weight_sum,
         n_interests) = _HEADER.unpack_from(data, 0)
        offset = _HEADER.size
        heads = [_INTEREST.unpack_from(data, offset + n * _INTEREST.size) for n in range(n_interests)]
        offset += n_interests * _INTEREST.size
        rows = floats_of(data, n_interests * dim, offset).reshape(n_interests, dim)  # (K, D)
        offset += 2 * n_interests * dim
        (length,) = _TEXT_LENGTH.unpack_from(data, offset)
        offset += _TEXT_LENGTH.size
        ids = data[offset : offset + length].decode("utf-8").split(_SEPARATOR)
        interests = []
        at = 0
        for n, (k_sum, activity, n_items) in enumerate(heads):
            interests.append(Interest(rows[n], k_sum, tuple(ids[at : at + n_items]), activity))
            at += n_items
        history_end = at + n_history
        seen_end = history_end + n_seen
        interests_t = tuple(interests)
        state = cls(vector=sum_rows(rows), updated_ms=updated_ms, events=events, weight_sum=weight_sum,
                    history=tuple(ids[at:history_end]), seen=tuple(ids[history_end:seen_end]),
                    shown=tuple(ids[seen_end : seen_end + n_shown]), space=ids[-1], interests=interests_t)
        return state, offset + length


def _searches(data: bytes, offset: int, dim: int) -> tuple[Search, ...]:
    """The searches block at `offset`."""
    (n,) = _SEARCHES.unpack_from(data, offset)
    offset += _SEARCHES.size
    after = struct.unpack_from(f"<{n}H", data, offset)
    offset += 2 * n
    vectors = floats_of(data, n * dim, offset).reshape(n, dim)  # (S, D)
    return tuple(Search(vectors[j], int(after[j])) for j in range(n))


def _text(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _LEN.pack(len(raw)) + raw


def _texts(data: bytes, offset: int, n: int) -> tuple[list[str], int]:
    """n (u16 length + UTF-8) strings from `offset`, and the offset after them."""
    out: list[str] = []
    for _ in range(n):
        (length,) = _LEN.unpack_from(data, offset)
        offset += _LEN.size
        out.append(data[offset : offset + length].decode("utf-8"))
        offset += length
    return out, offset
