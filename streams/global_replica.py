"""A worker's full, live copy of a compacted topic, read from every partition.

Each worker reads *all* partitions of the topic from the beginning with its own group-less
consumer and keeps reading: the same idea as Kafka Streams' GlobalKTable, built on the plain
client because Faust's GlobalTable did not replicate live between running workers on the
embedded broker. Compaction by key keeps a restart's replay to one record per key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import faust_consumer
from streams.connection import client_options
from streams.settings import Settings

log = logging.getLogger(__name__)

Apply = Callable[[bytes | None, bytes | None], None]  # (key, value); value None: a tombstone


class GlobalReplica:
    def __init__(self, settings: Settings, topic: str, apply: Apply,
                 on_batch: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.topic = topic
        self.apply = apply
        self.on_batch = on_batch  # after each fetched batch is applied (gauges)
        self.ready = asyncio.Event()  # set once the topic's history is applied

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **faust_consumer.replica_options(self.settings),
            **client_options(self.settings),
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for n, record in enumerate(records):
                        self.apply(record.key, record.value)
                        if n % 200 == 199:
                            await asyncio.sleep(0)  # a long catch-up does not stall the agents
                if not self.ready.is_set() and await self._caught_up(consumer, tps):
                    await self.before_ready()
                    log.info("replica of %s ready", self.topic)
                    self.ready.set()
                self.on_batch()
        finally:
            await consumer.stop()

    async def before_ready(self) -> None:
        """Runs once the history is applied, before `ready` is set."""

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[int]:
        for _ in range(300):
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return sorted(found)
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} not found")

    async def _caught_up(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
        # highwater comes from Fetch responses (ListOffsets is unreliable on some brokers)
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is None or await consumer.position(tp) < highwater:
                return False
        return True
