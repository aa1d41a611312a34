from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest

from cf.state import Interest, UserState, float16_of, floats_of, stored_precision, sum_rows, widened


def test_bytes_round_trip() -> None:
    state = UserState(
        vector=np.arange(384, dtype=np.float32) / 7, updated_ms=1_700_000_000_123, events=42,
        weight_sum=-1.25,
        history=("12", "élan", "x" * 40), seen=("ev-1", "ev-2"), space="all-MiniLM-L6-v2@abc",
        shown=("7", "3"),
    )
    back = UserState.from_bytes(state.to_bytes())
    np.testing.assert_allclose(back.vector, state.vector, rtol=2**-11)  # stored as float16
    assert UserState.updated_ms_of(state.to_bytes()) == state.updated_ms
    assert (back.updated_ms, back.events, back.weight_sum, back.history, back.seen, back.shown,
            back.space) == (state.updated_ms, state.events, state.weight_sum, state.history, state.seen,
                            state.shown, state.space)


@pytest.mark.parametrize("history", [("12", "34"), ("a\x00b", "c")])  # format 5, format 4
def test_a_state_written_with_the_list_just_shown_is_that_state_with_it(history: tuple[str, ...]) -> None:
    state = UserState(vector=np.ones(4, np.float32), updated_ms=3, events=2, weight_sum=1.0, history=history,
                      seen=("e1", "e2"), shown=("old",), space="enc",
                      interests=(Interest(np.ones(4, np.float32), 1.0, history[:1], 1.0),))
    shown = ("7", "3", "5")
    assert state.to_bytes(shown) == replace(state, shown=shown).to_bytes()
    assert UserState.from_bytes(state.to_bytes(shown)).shown == shown
    assert state.to_bytes() == state.to_bytes(state.shown)


def test_float16_read_back_is_numpys_conversion_bit_for_bit() -> None:
    halves = np.arange(1 << 16, dtype="<u2").view("<f2")  # every float16, NaNs and infinities among them
    want = halves.astype(np.float32).view("<u4")
    assert np.array_equal(widened(halves).view("<u4"), want)
    raw = b"xyz" + halves.tobytes()  # at an odd offset, as in a state's bytes
    assert np.array_equal(floats_of(raw, halves.size, 3).view("<u4"), want)
    rows = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)  # (K, D)
    np.testing.assert_array_equal(stored_precision(rows), float16_of(rows).astype(np.float32))


def test_encoding_is_compact() -> None:
    interests = (Interest(np.full(384, 0.5, np.float32), 1.0, ("17", "4")),
                 Interest(np.ones(384, np.float32), 2.0))
    state = UserState(vector=np.full(384, 1.5, np.float32), updated_ms=0, weight_sum=3.0, history=("1",) * 10,
                      interests=interests)
    # a 30-byte header; per interest 13 bytes and 384 float16; a 4-byte length and the ids
    # joined by NUL: "17", "4", ten "1" and an empty space name (13 ids, 12 separators). The
    # single vector is the interests' sum.
    assert len(state.to_bytes()) == 30 + 2 * (13 + 384 * 2) + 4 + (2 + 1 + 10 * 1 + 12)
    back = UserState.from_bytes(state.to_bytes())
    np.testing.assert_array_equal(back.vector, state.vector)
    assert [k.items for k in back.interests] == [("17", "4"), ()]


def test_an_id_holding_a_nul_is_written_one_id_at_a_time_in_format_4() -> None:
    state = UserState(vector=np.ones(4, np.float32), updated_ms=3, events=1, weight_sum=1.0,
                      history=("a\x00b", "c"), seen=("e",), space="enc",
                      interests=(Interest(np.ones(4, np.float32), 1.0, ("a\x00b",), 1.0),))
    raw = state.to_bytes()
    assert raw[0] == 4
    back = UserState.from_bytes(raw)
    assert (back.history, back.seen, back.space, back.interests[0].items) == (("a\x00b", "c"), ("e",), "enc",
                                                                              ("a\x00b",))


def test_format_4_is_still_read() -> None:
    interests = (Interest(np.full(4, 0.5, np.float32), 1.5, ("17", "4"), 2.0),
                 Interest(np.ones(4, np.float32), -1.0, (), 0.5))
    state = UserState(vector=np.full(4, 1.5, np.float32), updated_ms=9, events=3, weight_sum=0.5,
                      history=("17", "4", "é"), seen=("e1",), shown=("8",), space="enc", interests=interests)
    v4 = state._format_4(interests, state.shown)
    assert v4[0] == 4
    back, current = UserState.from_bytes(v4), UserState.from_bytes(state.to_bytes())
    for got in (back, current):
        assert (got.history, got.seen, got.shown, got.space, got.updated_ms, got.events) == (
            ("17", "4", "é"), ("e1",), ("8",), "enc", 9, 3)
        assert [(k.items, k.weight_sum, k.activity) for k in got.interests] == [(("17", "4"), 1.5, 2.0),
                                                                                ((), -1.0, 0.5)]
        np.testing.assert_array_equal(got.vector, state.vector)


def test_format_3_single_vector_is_read_as_the_users_only_interest() -> None:
    v3 = (struct.pack("<BHqIHHHd", 3, 2, 7, 4, 0, 0, 0, 2.5) + np.array([0.5, -1], "<f2").tobytes()
          + b"\x03\x00enc")
    back = UserState.from_bytes(v3)
    assert len(back.interests) == 1 and back.interests[0].weight_sum == 2.5
    np.testing.assert_array_equal(back.interests[0].vector, [0.5, -1])
    again = UserState.from_bytes(back.to_bytes())  # written back as format 5
    np.testing.assert_array_equal(again.vector, [0.5, -1])
    assert (again.events, again.weight_sum, again.space, len(again.interests)) == (4, 2.5, "enc", 1)


def test_format_2_float32_vectors_are_still_read() -> None:
    v2 = (struct.pack("<BHqIHHHd", 2, 2, 7, 1, 0, 0, 1, 1.0) + np.array([0.1, 3e5], "<f4").tobytes()
          + b"\x01\x00a" + b"\x00\x00")
    back = UserState.from_bytes(v2)
    np.testing.assert_array_equal(back.vector, np.array([0.1, 3e5], np.float32))  # float32 exactly
    assert (back.shown, back.updated_ms, UserState.updated_ms_of(v2)) == (("a",), 7, 7)
    # beyond float16's range a component is clipped, never infinite
    assert np.isfinite(UserState.from_bytes(back.to_bytes()).vector).all()


def test_format_1_is_still_read() -> None:
    """States written before `shown` existed: the same layout without n_shown and its ids."""
    v1 = (struct.pack("<BHqIHHd", 1, 2, 5_000, 3, 1, 1, 1.5) + np.array([0.5, -1], "<f4").tobytes()
          + b"\x01\x00a" + b"\x02\x00e1" + b"\x03\x00enc")
    back = UserState.from_bytes(v1)
    assert (back.updated_ms, back.events, back.weight_sum, back.history, back.seen, back.shown,
            back.space) == (5_000, 3, 1.5, ("a",), ("e1",), (), "enc")
    np.testing.assert_array_equal(back.vector, [0.5, -1])


def test_unknown_format_is_refused() -> None:
    raw = bytearray(UserState.empty(4).to_bytes())
    raw[0] = 99
    with pytest.raises(ValueError, match="format"):
        UserState.from_bytes(bytes(raw))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_the_rows_sum_adds_whole_rows_in_order_as_a_running_total(k: int) -> None:
    """`sum_rows` (one numpy reduction) is the running total u = ((e_1 + e_2) + e_3) + ... that
    older states were decoded with, bit for bit: elementwise float32 adds in one order, no BLAS."""
    rows = np.random.default_rng(k).normal(scale=[[10.0 ** (n - 2)] for n in range(k)], size=(k, 384))
    rows = rows.astype(np.float32)  # (K, D) of different magnitudes: the order of the adds shows
    total = np.zeros(384, np.float32)
    for row in rows:
        total += row
    np.testing.assert_array_equal(sum_rows(rows), total)
    assert sum_rows(np.zeros((0, 384), np.float32)).shape == (384,)


def test_searches_follow_either_layout_and_a_state_without_them_keeps_its_bytes() -> None:
    from cf.state import Search

    rng = np.random.default_rng(0)
    searches = tuple(Search(rng.normal(size=4).astype(np.float32), after) for after in (3, 0))
    plain = UserState(vector=np.ones(4, np.float32), updated_ms=5, events=2, weight_sum=1.0,
                      history=("a", "b"), seen=("e",), space="enc",
                      interests=(Interest(np.ones(4, np.float32), 1.0, ("a",), 1.0),))
    with_nul = UserState(vector=np.ones(4, np.float32), updated_ms=5, events=2, weight_sum=1.0,
                         history=("a\x00b",), space="enc")
    for state, layout in ((plain, 5), (with_nul, 4)):
        raw = state.to_bytes()
        assert raw[0] == layout and UserState.from_bytes(raw).searches == ()
        searched = UserState(**{**state.__dict__, "searches": searches})
        raw = searched.to_bytes()
        assert raw[0] == layout + 2
        assert raw.startswith(bytes([layout + 2]) + state.to_bytes()[1:])  # the block comes after
        back = UserState.from_bytes(raw)
        assert back.history == state.history and [s.after for s in back.searches] == [3, 0]
        for got, sent in zip(back.searches, searches, strict=True):
            np.testing.assert_allclose(got.vector, sent.vector, rtol=2**-11)  # stored as float16
        rounded = searched.rounded()
        for got, kept in zip(back.searches, rounded.searches, strict=True):
            np.testing.assert_array_equal(got.vector, kept.vector)  # `rounded` is what comes back
        assert UserState.updated_ms_of(raw) == 5
