"""A table recovery that reads nothing: when it is nudged, and when the worker gives up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.recovery_watch import RecoveryStalled, RecoveryWatch, quiet_partitions, watch_recovery

A, B = ("users-changelog", 2), ("users-changelog", 3)


def test_a_partition_with_records_left_and_none_read_for_the_stall_time_is_stalled() -> None:
    left = {A: 129, B: 81, ("users-changelog", 0): 0}
    # A: nothing read since the start 20 s ago; B: a record 3 s ago; 0: nothing left to read
    assert quiet_partitions(left, {B: 97.0}, since=80.0, now=100.0, stall_s=15.0) == [A]
    assert quiet_partitions(left, {}, since=90.0, now=100.0, stall_s=15.0) == []  # 10 s: not yet


def test_a_new_recovery_starts_counting_afresh() -> None:
    watch = RecoveryWatch(stall_s=15.0, max_nudges=2)
    assert watch.decide(0.0, {A: 10}, {}, now=16.0) == ("nudge", [A])
    watch.nudged({A: 10}, now=16.0, broker_answers=True)
    assert watch.decide(0.0, {A: 10}, {}, now=20.0) == ("wait", [])  # 4 s after the nudge
    # a rebalance started another recovery: its own start, no nudges counted
    assert watch.decide(50.0, {A: 10}, {}, now=60.0) == ("wait", [])
    assert watch.unanswered == 0


def test_unanswered_nudges_with_the_broker_answering_end_in_giving_up() -> None:
    watch = RecoveryWatch(stall_s=15.0, max_nudges=2)
    now = 15.0
    for _ in range(2):
        assert watch.decide(0.0, {A: 10, B: 5}, {}, now) == ("nudge", [A, B])
        watch.nudged({A: 10, B: 5}, now, broker_answers=True)
        now += 15.0
    assert watch.decide(0.0, {A: 10, B: 5}, {}, now) == ("give_up", [A, B])


def test_a_broker_that_does_not_answer_is_waited_for() -> None:
    watch = RecoveryWatch(stall_s=15.0, max_nudges=1)
    now = 15.0
    for _ in range(5):  # the broker away for over a minute: nudged, never given up on
        assert watch.decide(0.0, {A: 10}, {}, now)[0] == "nudge"
        watch.nudged({A: 10}, now, broker_answers=False)
        now += 15.0
    watch.nudged({A: 10}, now, broker_answers=True)  # back, and still nothing read
    assert watch.decide(0.0, {A: 10}, {}, now + 15.0)[0] == "give_up"


def test_records_read_after_a_nudge_reset_the_count() -> None:
    watch = RecoveryWatch(stall_s=15.0, max_nudges=1)
    assert watch.decide(0.0, {A: 10, B: 5}, {}, now=15.0)[0] == "nudge"
    watch.nudged({A: 10, B: 5}, now=15.0, broker_answers=True)
    # the nudge worked for A (4 records read, the last at 17 s); B is still silent at 31 s
    assert watch.decide(0.0, {A: 6, B: 5}, {A: 17.0}, now=31.0) == ("nudge", [B])
    assert watch.unanswered == 0


@dataclass
class FakeRecovery:
    active_tps: set[TP]
    active_highwaters: Counter[TP]
    active_offsets: Counter[TP]
    _recovery_started_at: float = 0.0
    _active_events_received_at: dict[TP, float] = field(default_factory=dict)
    in_recovery: bool = True

    def active_remaining(self) -> Counter[TP]:
        return Counter({tp: hw - self.active_offsets[tp] for tp, hw in self.active_highwaters.items()})


@dataclass
class FakeConsumer:
    resumed: list[set[TP]] = field(default_factory=list)
    sought: list[dict[TP, int]] = field(default_factory=list)

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed.append(tps)

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.sought.append(offsets)


@dataclass
class FakeApp:
    tables: Any
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    crashed: list[BaseException] = field(default_factory=list)

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


def fake_app() -> FakeApp:
    a, b, done = TP(*A), TP(*B), TP("users-changelog", 0)
    recovery = FakeRecovery(active_tps={a, b, done},
                            active_highwaters=Counter({a: 128, b: 80, done: 7}),
                            active_offsets=Counter({a: -1, b: 40, done: 7}))

    @dataclass
    class Tables:
        recovery: FakeRecovery

    return FakeApp(tables=Tables(recovery))


async def test_the_stalled_partitions_are_resumed_and_sought_to_what_recovery_applied() -> None:
    app, metrics, watch = fake_app(), Metrics.create(CollectorRegistry()), RecoveryWatch(max_nudges=1)
    asked: list[list[tuple[str, int]]] = []

    async def answers(tps: list[tuple[str, int]]) -> bool:
        asked.append(tps)
        return True

    await watch_recovery(app, watch, metrics, 10.0, answers)  # 10 s: not yet
    assert app.consumer.sought == []
    await watch_recovery(app, watch, metrics, 15.0, answers)
    # A never applied a record (-1): from its first; B from the last it applied; 0 is done
    assert app.consumer.sought == [{TP(*A): 0, TP(*B): 40}]
    assert app.consumer.resumed == [{TP(*A), TP(*B)}]
    assert asked == [[A, B]] and metrics.recovery_stalls._value.get() == 1
    await watch_recovery(app, watch, metrics, 30.0, answers)
    assert len(app.crashed) == 1 and isinstance(app.crashed[0], RecoveryStalled)
    assert "users-changelog[2]" in str(app.crashed[0])


async def test_nothing_is_done_outside_a_recovery() -> None:
    app = fake_app()
    app.tables.recovery.in_recovery = False

    async def answers(tps: list[tuple[str, int]]) -> bool:
        raise AssertionError("not asked")

    await watch_recovery(app, RecoveryWatch(), Metrics.create(CollectorRegistry()), 1000.0, answers)
    assert app.consumer.sought == [] and app.crashed == []
