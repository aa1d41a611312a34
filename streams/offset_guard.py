"""Every record of an input partition reaches its agent, even where Faust's fetcher skips some.

faust-streaming 0.15 can hand a stream a partition's records with a hole in them after a
rebalance or a recovery: a record prefetched far ahead of the committed offset reaches the
stream first, the records below it are then dropped as "already read", and the jump is booked
as a gap that counts as acknowledged, so the commit moves past records nobody processed
(faust-streaming issues #216, #221, #606). Our input topics are not compacted and nobody writes
to them in transactions, so their offsets are dense: a jump is records missing.

The guard sees each hole before its batch is processed and reads the missing records itself,
from the broker, in order, ahead of the record after the hole. Faust acks a batch only after
the agent is done with it, and counts a gap as acknowledged only once a record after it is, so
no offset is committed past a record that was not processed:

    expected[tp] = the group's committed offset (the log start where there is none), at the
                   first record of tp after an assignment; then the last offset seen + 1
    offset > expected[tp]  ->  hole [expected[tp], offset): what of it the group has not
                               committed is fetched and processed first
    offset < expected[tp]  ->  a redelivery: processed again (the state skips what it merged)

A hole at the end of a partition has no record after it to reveal it: the agent has been idle
for `STALL_S`, yet the partition holds records past the last one the agent saw (its end offset,
asked of the broker, is past `expected[tp]`). Either Faust read them and never delivered them, or
its fetcher stopped asking for the partition (seen once, on a worker that joined a group
mid-stream: two partitions assigned, none of their records fetched for minutes). The worker then
resumes the partition in Faust's consumer and seeks it back to `expected[tp]`, and Faust delivers
them again (`stalled`, run by the worker's 5 s timer; idle means for `STALL_S` and at least twice
the time the agent may take to collect a batch; never while Faust recovers tables, when it holds
the partitions paused on purpose). The same records must also have waited that long, seen by
two checks `stall_s` apart (`overdue`): a record that comes after an idle spell sits in the
agent's batch for up to the batch's wait (5 s for the co-occurrence stage), and one seek back then
delivered it twice. A partition whose every record Faust dropped after an
assignment (seen after a broker stalled past the session timeout) never shows the agent a record
at all: for an assigned partition the agent has seen nothing of, the idle check takes the group's
committed offset as `expected[tp]`, the same rule as at a first record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.connection import client_options
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

Partition = tuple[str, int]  # (topic, partition)
STALL_S = 10.0  # at least this idle, with records past what the agent saw: a stall


@dataclass(frozen=True)
class Hole:
    topic: str
    partition: int
    start: int  # the first missing offset
    stop: int  # the record after the hole; the hole is [start, stop)


Holes = list[tuple[int, Hole]]  # (index of the record a hole precedes, the hole)


def find_holes(expected: Mapping[Partition, int],
               records: Iterable[tuple[str, int, int]]) -> tuple[dict[Partition, int], Holes]:
    """`records`: (topic, partition, offset) in delivery order; every partition in them has an
    entry in `expected`. -> (expected after them, the holes in delivery order)."""
    after = dict(expected)
    holes: Holes = []
    for n, (topic, partition, offset) in enumerate(records):
        tp = (topic, partition)
        if offset > after[tp]:
            holes.append((n, Hole(topic, partition, after[tp], offset)))
        after[tp] = max(after[tp], offset + 1)
    return after, holes


def stalled(expected: Mapping[Partition, int], ends: Mapping[Partition, int]) -> list[Partition]:
    """Partitions holding records the agent has not seen (expected < end offset). Asked only of
    an agent idle for `stall_s`: records that waited that long were read and dropped by Faust, or
    never fetched."""
    return sorted(tp for tp, next_offset in expected.items() if tp in ends and ends[tp] > next_offset)


@dataclass(frozen=True)
class RefetchedMessage:
    """The parts of a Faust message the agents read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds, as Faust gives it


@dataclass(frozen=True, eq=False)  # eq=False: hashable by identity, and weakly referenceable
class RefetchedEvent:
    """A record the guard read itself, in place of a Faust Event. Table writes for it go to its
    partition (`streams.event_context`), which is the partition of the record after the hole."""

    message: RefetchedMessage


class OffsetGuard:
    """Per agent: `await guard.complete(batch)` returns the batch with its holes filled."""

    def __init__(self, settings: Settings, metrics: Metrics, batch_wait_s: float,
                 fetch_timeout_s: float = 30.0, retry_first_s: float = 0.5) -> None:
        """`batch_wait_s`: the longest the agent collects a batch; an agent idle for less than
        twice that (or `STALL_S`) may still be collecting one, and is not stalled."""
        self.settings, self.metrics = settings, metrics
        self.stall_s = max(STALL_S, 2 * batch_wait_s)
        self.fetch_timeout_s = fetch_timeout_s
        self.retry_first_s = retry_first_s  # the first wait for a broker that does not answer
        self.expected: dict[Partition, int] = {}
        self.assigned: set[Partition] = set()  # this agent's source partitions on this worker
        self.generation = 0  # assignments so far: a batch read before the latest one is stale
        self._consumer: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()
        self._busy = False
        self._idle_since = time.monotonic()
        self._waiting: dict[Partition, tuple[int, float]] = {}  # tp -> (expected[tp], first seen behind)

    @contextlib.contextmanager
    def processing(self) -> Iterator[None]:
        """Around the agent's work on a batch: the stall check waits for an idle agent."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
            self._idle_since = time.monotonic()

    def idle_s(self, now: float) -> float:
        return 0.0 if self._busy else now - self._idle_since

    def overdue(self, behind: Iterable[Partition], now: float) -> list[Partition]:
        """Of the partitions `behind` (holding records past `expected`, asked of an idle agent),
        those whose same first unseen record was behind `stall_s` ago already: a partition first
        seen behind now, or whose `expected` moved since, starts its wait now. A partition this
        returns waits again from `now`: a seek back is given the stall time to deliver."""
        waiting: dict[Partition, tuple[int, float]] = {}
        for tp in behind:
            offset, since = self._waiting.get(tp, (-1, now))
            waiting[tp] = (offset, since) if offset == self.expected[tp] else (self.expected[tp], now)
        due = sorted(tp for tp, (_, since) in waiting.items() if now - since >= self.stall_s)
        waiting.update((tp, (self.expected[tp], now)) for tp in due)
        self._waiting = waiting
        return due

    def reset(self, assigned: Iterable[Partition] = ()) -> None:
        """After a rebalance: each partition starts again from the group's committed offset."""
        self.expected.clear()
        self._waiting.clear()
        self.assigned = set(assigned)
        self.generation += 1

    async def expect_assigned(self) -> None:
        """`expected` for the assigned partitions the agent has seen no record of (an idle agent:
        the stall check's, so that a partition Faust read without delivering anything is found)."""
        unseen = sorted(self.assigned - self.expected.keys())
        if unseen:
            starts = await self._start_offsets(unseen)
            for tp, offset in starts.items():
                self.expected.setdefault(tp, offset)  # a batch that came meanwhile set it first

    async def complete(self, batch: Sequence[Any]) -> list[Any]:
        records = [(e.message.topic, e.message.partition, e.message.offset) for e in batch]
        new = sorted({(t, p) for t, p, _ in records} - self.expected.keys())
        if new:
            generation = self.generation
            starts = await self._until_answered(functools.partial(self._start_offsets, new))
            if generation != self.generation:
                # a rebalance came while the broker was asked: the batch is of the assignment
                # before it, and Faust delivers again from the committed offsets; it must not
                # set what the new assignment expects
                return list(batch)
            self.expected.update(starts)
        self.expected, holes = find_holes(self.expected, records)
        if not holes:
            return list(batch)
        out: list[Any] = []
        done = 0
        for index, hole in holes:
            out.extend(batch[done:index])
            out.extend(await self._until_answered(functools.partial(self._fetch, hole)))
            done = index
        out.extend(batch[done:])
        return out

    async def _until_answered(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` once the broker answers. While it is away (a restart) the agent waits here
        with its batch, committing nothing, rather than crash (a crashed Faust agent is not
        restarted: the worker would stay up and process nothing); each try starts the guard's
        consumer anew."""
        delay = self.retry_first_s
        while True:
            try:
                return await call()
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning("offset guard: the broker did not answer (%s); trying again in %.1f s",
                            exc or type(exc).__name__, delay)
            with contextlib.suppress(Exception):
                await self.stop()
            await asyncio.sleep(delay)
            delay = min(2 * delay, 5.0)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _client(self) -> AIOKafkaConsumer:
        async with self._starting:  # the agent and the stall check may both ask at once
            if self._consumer is None:
                self._consumer = await self._started_consumer()
        return self._consumer

    async def _started_consumer(self) -> AIOKafkaConsumer:
        # the group's id, to read its committed offsets; it never subscribes, so it never joins
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, group_id=self.settings.app_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms, **client_options(self.settings))
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()  # the broker away: the next call starts a new one
            raise
        return consumer

    async def end_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Each partition's end offset (its high watermark) as the broker has it now."""
        if not partitions:
            return {}
        consumer = await self._client()
        ends = await consumer.end_offsets([TopicPartition(t, p) for t, p in partitions])
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def _start_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        consumer = await self._client()
        tps = [TopicPartition(t, p) for t, p in partitions]
        starts = await consumer.beginning_offsets(tps)
        out = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            out[(tp.topic, tp.partition)] = committed if committed is not None else starts[tp]
        return out

    async def _fetch(self, hole: Hole) -> list[RefetchedEvent]:
        """The records [hole.start, hole.stop) of the hole's partition not yet committed, in order.
        A hole the group has committed past was processed by the worker that owned the partition
        before (a late commit of a revoked owner): nothing is read back for it."""
        consumer = await self._client()
        tp = TopicPartition(hole.topic, hole.partition)
        committed = await consumer.committed(tp)
        start = max(hole.start, committed or 0)
        if start >= hole.stop:
            log.info("%s[%d]: records %d..%d were processed by the previous owner (committed %d)",
                     hole.topic, hole.partition, hole.start, hole.stop - 1, committed)
            return []
        consumer.assign([tp])
        consumer.seek(tp, start)
        got: list[RefetchedEvent] = []
        deadline = time.monotonic() + self.fetch_timeout_s
        position = start
        while position < hole.stop and time.monotonic() < deadline:
            fetched = await consumer.getmany(tp, timeout_ms=500)
            for r in fetched.get(tp, []):
                if start <= r.offset < hole.stop:
                    got.append(RefetchedEvent(RefetchedMessage(
                        r.topic, r.partition, r.offset, r.key, r.value, r.timestamp / 1000.0)))
                position = max(position, r.offset + 1)
            await asyncio.sleep(0)
        self.metrics.offset_holes.labels(hole.topic).inc()
        self.metrics.refetched_records.labels(hole.topic).inc(len(got))
        level = logging.WARNING if position >= hole.stop else logging.ERROR
        log.log(level, "%s[%d]: records %d..%d skipped by the consumer; %d read back directly%s",
                hole.topic, hole.partition, start, hole.stop - 1, len(got),
                "" if position >= hole.stop else f" (the rest not readable in {self.fetch_timeout_s:.0f} s)")
        return got
