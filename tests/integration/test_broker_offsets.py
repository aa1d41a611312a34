"""The embedded broker's end offsets, as Faust's changelog recovery sees them."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.faust_consumer import fetched_ends
from streams.ops.broker import LocalBroker


async def _ends(bootstrap: str, topic: str) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=b"x%d" % n, partition=0) for n in range(30)]
        await asyncio.gather(*sent)  # lingering: a few multi-record batches
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        listed = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return listed, await fetched_ends(bootstrap, listed, fetch_wait_ms=20)


def test_fetched_ends_are_the_true_ends_after_multi_record_batches(tansu: LocalBroker) -> None:
    broker = tansu  # the workaround is for the embedded broker's ListOffsets
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = "offsets-check"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    listed, fetched = asyncio.run(_ends(broker.bootstrap, topic))
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    assert fetched[p0] == 30  # 30 records at offsets 0..29
    assert fetched[p1] == listed[p1] == 0  # empty: nothing fetched
    assert listed[p0] <= fetched[p0]  # the broker lists 1 here: the base offset of the last batch + 1
