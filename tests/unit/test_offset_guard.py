"""Holes in a partition's delivered offsets: what the guard reads back before the batch goes on."""

from __future__ import annotations

from streams.metrics import Metrics
from streams.offset_guard import Hole, OffsetGuard, find_holes, stalled
from streams.settings import Settings


def test_dense_offsets_have_no_hole_and_advance_the_expectation() -> None:
    after, holes = find_holes({("e", 0): 5, ("e", 1): 0}, [("e", 0, 5), ("e", 1, 0), ("e", 0, 6)])
    assert holes == [] and after == {("e", 0): 7, ("e", 1): 1}


def test_a_jump_is_a_hole_before_the_record_after_it() -> None:
    # the consumer handed over 5, then 9: 6..8 were skipped
    after, holes = find_holes({("e", 0): 5}, [("e", 0, 5), ("e", 0, 9), ("e", 0, 10)])
    assert holes == [(1, Hole("e", 0, 6, 9))]
    assert after == {("e", 0): 11}


def test_the_first_record_after_an_assignment_is_checked_against_the_committed_offset() -> None:
    # committed 100, and the first record delivered is one prefetched far ahead
    _, holes = find_holes({("e", 2): 100}, [("e", 2, 180)])
    assert holes == [(0, Hole("e", 2, 100, 180))]


def test_a_redelivery_is_no_hole_and_does_not_move_the_expectation_back() -> None:
    after, holes = find_holes({("e", 0): 50}, [("e", 0, 40), ("e", 0, 41)])
    assert holes == [] and after == {("e", 0): 50}
    # and the records after it are expected where they were
    _, holes = find_holes(after, [("e", 0, 52)])
    assert holes == [(0, Hole("e", 0, 50, 52))]


def test_holes_in_two_partitions_are_found_in_delivery_order() -> None:
    _, holes = find_holes({("e", 0): 0, ("e", 1): 0}, [("e", 1, 3), ("e", 0, 0), ("e", 0, 2)])
    assert holes == [(0, Hole("e", 1, 0, 3)), (2, Hole("e", 0, 1, 2))]


def test_a_partition_with_records_the_agent_has_not_seen_is_stalled() -> None:
    expected = {("e", 0): 40, ("e", 1): 40, ("e", 2): 40, ("e", 3): 40}
    ends = {("e", 0): 60, ("e", 1): 40, ("e", 2): 41}  # 3: its end not known (not asked)
    # 0 and 2: records past what the agent saw; 1: the agent saw everything
    assert stalled(expected, ends) == [("e", 0), ("e", 2)]


def test_a_partition_is_overdue_once_the_same_records_waited_the_stall_time() -> None:
    guard = OffsetGuard(Settings(), Metrics.create(), batch_wait_s=0.02)  # stall_s 10
    guard.expected = {("e", 0): 5, ("e", 1): 7}
    assert guard.overdue([("e", 0)], now=100.0) == []
    assert guard.overdue([("e", 0), ("e", 1)], now=105.0) == []
    assert guard.overdue([("e", 0), ("e", 1)], now=110.0) == [("e", 0)]
    assert guard.overdue([("e", 0), ("e", 1)], now=115.0) == [("e", 1)]  # e0 waits again from 110
    guard.expected[("e", 0)] = 6  # a record was delivered: what is behind now waits from now
    assert guard.overdue([("e", 0)], now=120.0) == []
    assert guard.overdue([("e", 0)], now=129.0) == []
    guard.reset([("e", 0)])
    guard.expected = {("e", 0): 6}
    assert guard.overdue([("e", 0)], now=130.0) == []  # a rebalance forgets every wait
    assert guard.overdue([], now=131.0) == []
    assert guard.overdue([("e", 0)], now=141.0) == []  # caught up in between: a new wait
