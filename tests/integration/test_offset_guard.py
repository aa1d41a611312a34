"""The guard against the real broker: where the consumer skipped records, it reads them back
from the group's committed offset (or the log start), in order, ahead of the record after them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.admin import ensure_topics
from streams.metrics import Metrics
from streams.offset_guard import OffsetGuard, RefetchedEvent
from streams.ops.broker import LocalBroker
from streams.settings import Settings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Delivered:
    """What Faust hands the agent, as far as the guard reads it."""

    message: Message


async def _scenario(settings: Settings,
                    topic: str) -> tuple[list[object], list[object], dict[tuple[str, int], int], Metrics]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for p in (0, 1):
            for n in range(20):
                await producer.send(topic, key=b"k", value=b"p%d-%d" % (p, n), partition=p)
        await producer.flush()
    finally:
        await producer.stop()
    # the group committed 12 on partition 0 and nothing on partition 1
    await _commit(settings, TopicPartition(topic, 0), 12)
    metrics = Metrics.create()
    guard = OffsetGuard(settings, metrics, batch_wait_s=0.02)
    try:
        # first records after the assignment: 15 on partition 0 (12..14 skipped), 3 on partition
        # 1 (0..2 skipped); then 16
        first = await guard.complete([Delivered(Message(topic, 0, 15)), Delivered(Message(topic, 1, 3)),
                                      Delivered(Message(topic, 0, 16))])
        # 19 on partition 0 (17, 18 skipped) after the previous owner committed 18: only 18 is
        # read back; 9 on partition 1 (4..8 skipped) after it committed 10: nothing is
        await _commit(settings, TopicPartition(topic, 0), 18)
        await _commit(settings, TopicPartition(topic, 1), 10)
        second = await guard.complete([Delivered(Message(topic, 0, 19)), Delivered(Message(topic, 1, 9))])
        ends = await guard.end_offsets([(topic, 0), (topic, 1)])  # what the stall check compares with
    finally:
        await guard.stop()
    return first, second, ends, metrics


async def _commit(settings: Settings, tp: TopicPartition, offset: int) -> None:
    committer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.app_id,
                                 enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign([tp])
        await committer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await committer.stop()


def _described(events: list[object]) -> list[tuple[int, int, bytes | None]]:
    out = []
    for e in events:
        m = e.message  # type: ignore[attr-defined]
        out.append((m.partition, m.offset, m.value if isinstance(e, RefetchedEvent) else None))
    return out


def test_skipped_records_are_read_back_in_place(broker: LocalBroker) -> None:
    settings = Settings(broker=broker.url, broker_profile=broker.kind, app_id="guard-check",
                        topic_prefix="guard.", partitions=2)
    ensure_topics(settings)
    topic = "guard.events"
    first, second, ends, metrics = asyncio.run(_scenario(settings, topic))
    assert _described(first) == [
        (0, 12, b"p0-12"), (0, 13, b"p0-13"), (0, 14, b"p0-14"), (0, 15, None),
        (1, 0, b"p1-0"), (1, 1, b"p1-1"), (1, 2, b"p1-2"), (1, 3, None),
        (0, 16, None),
    ]
    assert _described(second) == [(0, 18, b"p0-18"), (0, 19, None), (1, 9, None)]
    assert ends == {(topic, 0): 20, (topic, 1): 20}
    value = metrics.registry.get_sample_value
    assert value("interests_offset_holes_total", {"topic": topic}) == 3
    assert value("interests_refetched_records_total", {"topic": topic}) == 7
