"""A table recovery that stops reading is nudged, and a worker it never resumes is stopped.

After every rebalance faust-streaming 0.15 recovers each active table partition by reading its
changelog from the offset the local RocksDB holds up to the end the broker listed; the worker
processes no event until that is done. Seen in about one run of the test suite in four: a worker
that kept two partitions when a second worker joined its group read nothing of their changelogs
for minutes (Faust logging "No event received for active tp ... since recovery start" every 5 s)
and held on to the partitions, so their users got no list and no other worker could take them.
It is the same family as the input partitions Faust stopped fetching after a rebalance
(streams/offset_guard.py), and the same remedy applies: resume the partition in Faust's consumer
and seek it, which drops what the client buffered for it and asks the broker again.

Every 5 s, from Faust's own recovery bookkeeping and the clock:

    quiet(tp)  = now - max(recovery start, last changelog record of tp, last nudge)
    stalled    = {tp active : records left(tp) > 0 and quiet(tp) >= STALL_S}

A stalled partition is resumed and sought back to the offset recovery has applied (Faust seeks
there too: the record at it is applied again, which changes nothing). A nudge that brings no
record does not count while the broker does not answer (a broker restart is waited for); once
`MAX_NUDGES` nudges went unanswered by a broker that does answer, the worker crashes with the
partitions named. Its supervisor (`restart: unless-stopped`, the StatefulSet) starts it again and
the group gives its partitions to a worker that can read them: better than holding them forever.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.metrics import Metrics

log = logging.getLogger(__name__)

STALL_S = 15.0  # a changelog partition with records left and none read for this long: stalled
MAX_NUDGES = 4  # unanswered nudges (the broker answering) before the worker gives up

Partition = tuple[str, int]  # (topic, partition)
Action = Literal["wait", "nudge", "give_up"]


def quiet_partitions(left: Mapping[Partition, int], last_read: Mapping[Partition, float], since: float,
            now: float, stall_s: float = STALL_S) -> list[Partition]:
    """Active changelog partitions with records `left` to read and none read for `stall_s`
    seconds (`last_read`: monotonic time of each one's last record; `since`: the recovery's
    start or the last nudge, whichever is later)."""
    return sorted(tp for tp, n in left.items()
                  if n > 0 and now - max(since, last_read.get(tp, since)) >= stall_s)


@dataclass
class RecoveryWatch:
    """One per worker; `decide` is called every few seconds while Faust recovers tables."""

    stall_s: float = STALL_S
    max_nudges: int = MAX_NUDGES
    started: float | None = None  # the recovery being watched (Faust's monotonic start time)
    nudged_at: float | None = None
    unanswered: int = 0  # nudges since the last record read, the broker answering
    left_at_nudge: dict[Partition, int] = field(default_factory=dict)

    def decide(self, started: float, left: Mapping[Partition, int], last_read: Mapping[Partition, float],
               now: float) -> tuple[Action, list[Partition]]:
        """-> what to do now, and about which partitions."""
        if started != self.started:  # a new recovery (a new rebalance): start counting afresh
            self.started, self.nudged_at, self.unanswered, self.left_at_nudge = started, None, 0, {}
        if any(left.get(tp, 0) < n for tp, n in self.left_at_nudge.items()):
            self.unanswered, self.left_at_nudge = 0, {}  # a nudge was answered: records came
        since = started if self.nudged_at is None else max(started, self.nudged_at)
        tps = quiet_partitions(left, last_read, since, now, self.stall_s)
        if not tps:
            return "wait", []
        if self.unanswered >= self.max_nudges:
            return "give_up", tps
        return "nudge", tps

    def nudged(self, left: Mapping[Partition, int], now: float, broker_answers: bool) -> None:
        """After a nudge: a broker that does not answer explains the silence, and is waited for."""
        self.nudged_at = now
        self.left_at_nudge = dict(left)
        if broker_answers:
            self.unanswered += 1


class RecoveryStalled(RuntimeError):
    pass


async def watch_recovery(app: Any, watch: RecoveryWatch, metrics: Metrics, now: float,
                         broker_answers: Callable[[list[Partition]], Awaitable[bool]]) -> None:
    """One look at Faust's recovery (`app.tables.recovery`): nudge its stalled partitions, or
    crash the worker. `broker_answers(tps)`: whether the broker lists those partitions now."""
    recovery = app.tables.recovery
    started = getattr(recovery, "_recovery_started_at", None)
    if not recovery.in_recovery or started is None:
        return
    by_key = {(tp.topic, tp.partition): tp for tp in recovery.active_tps}
    left = {(tp.topic, tp.partition): int(n) for tp, n in recovery.active_remaining().items()}
    last_read = {(tp.topic, tp.partition): at
                 for tp, at in getattr(recovery, "_active_events_received_at", {}).items()}
    action, tps = watch.decide(started, left, last_read, now)
    if action == "wait":
        return
    where = ", ".join(f"{t}[{p}] ({left[(t, p)]} records left)" for t, p in tps)
    if action == "give_up":
        log.error("table recovery read nothing of %s after %d nudges, the broker answering: "
                  "stopping this worker, so that its partitions go to one that can read them", where,
                  watch.unanswered)
        await app.crash(RecoveryStalled(f"table recovery stalled on {where}"))
        return
    metrics.recovery_stalls.inc()
    offsets = {by_key[key]: max(0, int(recovery.active_offsets.get(by_key[key], -1))) for key in tps}
    to = {f"{tp.topic}[{tp.partition}]": o for tp, o in offsets.items()}
    log.warning("table recovery read nothing of %s for %.0f s; resuming and seeking them back to %s "
                "(the consumer's view: %s)", where, watch.stall_s, to, consumer_view(app, set(offsets)))
    app.consumer.resume_partitions(set(offsets))
    await app.consumer.seek_wait(offsets)
    watch.nudged(left, now, await broker_answers(tps))


def consumer_view(app: Any, tps: set[Any]) -> str:
    """What Faust's consumer and its Kafka client hold for `tps`, for the log line that reports a
    stall (private attributes of faust-streaming 0.15 and aiokafka 0.14: the evidence a bug report
    upstream needs; "unknown" where they moved)."""
    try:
        consumer = app.consumer
        client = consumer._thread._consumer
        fetcher = client._fetcher
        assignment = client._subscription.subscription.assignment
        parts = []
        for tp in sorted(tps):
            key = next(k for k in assignment.tps if (k.topic, k.partition) == (tp.topic, tp.partition))
            state = assignment.state_value(key)
            position = state._position  # None: waiting for a committed offset or a reset
            parts.append(f"{tp.topic}[{tp.partition}]: position {position}, "
                         f"records held {key in fetcher._records}, "
                         f"fetched by faust {tp in (consumer._active_partitions or ())}, "
                         f"paused {tp in consumer._paused_partitions}")
        return "; ".join(parts) + (f"; fetches in flight to {sorted(fetcher._in_flight)}, "
                                   f"flow active {consumer.flow_active}")
    except Exception as exc:  # a diagnostic never takes the worker down
        return f"unknown ({exc!r})"
