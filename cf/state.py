"""A user's interest state and its compact byte form (what the changelog carries)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

FloatVec = npt.NDArray[np.float32]

# Layout, little-endian (format 3; formats 1 and 2 are still read):
#   header  <B H q I H H H d  format version, D, updated_ms, events, n_history, n_seen, n_shown,
#                             weight_sum
#   vector  D x float16    the decayed interest sum (not normalised); formats 1-2: float32
#   history n_history x (u16 length + UTF-8 item id), oldest first
#   seen    n_seen    x (u16 length + UTF-8 event id), oldest first
#   shown   n_shown   x (u16 length + UTF-8 item id), best first (format 1: absent)
#   space   u16 length + UTF-8 name of the vector space (encoder version)
# float16 keeps 11 significant bits: each component within 2^-11 of its value relative, so a
# stored vector's cosine to the float32 one is >= 1 - 2^-23 per write; `interests bench state`
# measures the drift over a user's whole history of writes (each merge re-rounds).
_FORMAT_VERSION = 3
_HEADER = struct.Struct("<BHqIHHHd")
_HEADER_V1 = struct.Struct("<BHqIHHd")
_LEN = struct.Struct("<H")
_FLOAT16_MAX = 65504.0


def vector_bytes(dim: int) -> int:
    """Bytes one stored interest vector takes."""
    return 2 * dim


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
    """

    vector: FloatVec
    updated_ms: int
    events: int = 0
    weight_sum: float = 0.0
    history: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()
    space: str = ""
    shown: tuple[str, ...] = ()

    @classmethod
    def empty(cls, dim: int, space: str = "") -> UserState:
        return cls(vector=np.zeros(dim, dtype=np.float32), updated_ms=0, space=space)

    def to_bytes(self) -> bytes:
        parts = [
            _HEADER.pack(
                _FORMAT_VERSION,
                self.vector.shape[0],
                self.updated_ms,
                self.events,
                len(self.history),
                len(self.seen),
                len(self.shown),
                self.weight_sum,
            ),
            np.clip(self.vector, -_FLOAT16_MAX, _FLOAT16_MAX).astype("<f2").tobytes(),
        ]
        for text in (*self.history, *self.seen, *self.shown, self.space):
            raw = text.encode("utf-8")
            parts.append(_LEN.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)

    def rounded(self) -> UserState:
        """This state as `from_bytes(to_bytes())` gives it back: the vector at stored precision."""
        stored = np.clip(self.vector, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)  # (D,)
        return replace(self, vector=stored.astype(np.float32))

    @staticmethod
    def updated_ms_of(data: bytes) -> int:
        """`updated_ms` of a stored state without decoding the rest (every format has it here)."""
        return int(struct.unpack_from("<q", data, 3)[0])

    @classmethod
    def from_bytes(cls, data: bytes) -> UserState:
        version = data[0] if data else None
        if version in (2, 3):
            _, dim, updated_ms, events, n_history, n_seen, n_shown, weight_sum = _HEADER.unpack_from(data, 0)
            offset = _HEADER.size
        elif version == 1:
            _, dim, updated_ms, events, n_history, n_seen, weight_sum = _HEADER_V1.unpack_from(data, 0)
            n_shown, offset = 0, _HEADER_V1.size
        else:
            raise ValueError(f"unknown user state format {version}")
        stored = "<f2" if version == 3 else "<f4"
        vector = np.frombuffer(data, dtype=stored, count=dim, offset=offset).astype(np.float32)  # (D,)
        offset += np.dtype(stored).itemsize * dim
        texts: list[str] = []
        for _ in range(n_history + n_seen + n_shown + 1):
            (length,) = _LEN.unpack_from(data, offset)
            offset += _LEN.size
            texts.append(data[offset : offset + length].decode("utf-8"))
            offset += length
        return cls(
            vector=vector,
            updated_ms=updated_ms,
            events=events,
            weight_sum=weight_sum,
            history=tuple(texts[:n_history]),
            seen=tuple(texts[n_history : n_history + n_seen]),
            shown=tuple(texts[n_history + n_seen : n_history + n_seen + n_shown]),
            space=texts[-1],
        )
