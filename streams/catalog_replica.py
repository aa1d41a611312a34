"""Every worker's full, live copy of the embedded catalog.

Each worker reads *all* partitions of the item-vectors topic from the beginning with its own
group-less consumer and keeps reading: the same idea as Kafka Streams' GlobalKTable, built on
the plain client because Faust's GlobalTable did not replicate live between running workers on
the embedded broker. The topic is compacted by item id, so a restart replays one record per item.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from cf.catalog import ItemCatalog
from streams import broker_profile
from streams.metrics import Metrics
from streams.records import parse_item_vector
from streams.settings import Settings

log = logging.getLogger(__name__)


class CatalogReplica:
    def __init__(self, settings: Settings, catalog: ItemCatalog, space: str, metrics: Metrics) -> None:
        self.settings = settings
        self.catalog = catalog
        self.space = space  # vectors of another encoder version are skipped
        self.metrics = metrics
        self.titles: dict[str, str] = {}
        self.ready = asyncio.Event()  # set once the topic's history is applied

    async def run(self) -> None:
        topic = self.settings.topic("item-vectors")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **broker_profile.client_options(self.settings),
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for record in records:
                        self.apply(record.key, record.value)
                self.metrics.items.set(len(self.catalog))
                if not self.ready.is_set() and await self._caught_up(consumer, tps):
                    log.info("catalog replica ready: %d items", len(self.catalog))
                    self.ready.set()
                    self.metrics.catalog_ready.set(1)
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> list[int]:
        for _ in range(300):
            found = consumer.partitions_for_topic(topic)
            if found:
                return sorted(found)
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic} not found")

    async def _caught_up(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
        # highwater comes from Fetch responses (ListOffsets is unreliable on some brokers)
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is None or await consumer.position(tp) < highwater:
                return False
        return True

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        item_id = key.decode("utf-8")
        if value is None:
            self.catalog.remove(item_id)
            self.titles.pop(item_id, None)
            return
        try:
            parsed_id, title, space, vector = parse_item_vector(value)
        except (ValueError, KeyError) as exc:
            log.error("skipping unreadable item vector %r: %s", item_id, exc)
            return
        if space != self.space or vector.shape[0] != self.catalog.dim:
            return
        self.catalog.upsert(parsed_id, vector)
        self.titles[parsed_id] = title
