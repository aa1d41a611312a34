"""Every table, in flow order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.structs import RecordMetadata
from faust.types import TP, FutureMessage

from streams.publisher import Publisher
from streams.settings import Settings
from streams.table_store import SharedStore, TableMemory
from streams.topics import TABLE_NAMES


class StoredTable(faust.Table):
    """A table whose writes can be awaited until their changelog records are acknowledged.

    Faust commits an input offset after `producer.flush()`, but that flush gives up after 0.1 s
    per record still waiting in Faust's send buffer (`ProducerBuffer.flush_atmost`): under load
    an offset was committed while the state it caused was not yet in the changelog, and a worker
    killed then lost the event. Every commit awaits `stored()` first
    (`streams.faust_consumer.before_commit`), so every offset Faust commits has its state
    stored first.

    With a `publisher` (the agent's own batching producer) a write queues its changelog record,
    `send_queued()` (at the end of a batch) sends the batch's records together, and `stored()`
    waits for their acknowledgements, then records each partition's newest
    changelog offset in the store as Faust does per record (`Table._on_changelog_sent`: where
    recovery resumes). Faust's own path sends records one at a time from its buffer, and while
    that buffer holds over 100 records it stops delivering messages to every stream."""

    def __init__(self, *args: Any, memory: TableMemory | None = None, **kwargs: Any) -> None:
        self.memory = memory  # shared by this table's RocksDB partitions; None: Faust's own store
        super().__init__(*args, **kwargs)
        self._unstored: list[FutureMessage] = []
        self._queued: list[tuple[int, bytes, bytes | None]] = []  # (partition, key, value) to send
        self._sent: list[asyncio.Future[RecordMetadata]] = []  # changelog records sent, not known stored
        self._persisted: dict[int, int] = {}  # partition -> newest changelog offset recorded as stored
        self.publisher: Publisher | None = None

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        fut = super().send_changelog(*args, **kwargs)
        self._unstored.append(fut)
        return fut

    def _queue(self, key: Any, value: Any) -> int | None:
        """Queue a changelog record for `stored()` and return its partition; None where Faust's
        own path must take it. Keys and values are the bytes the changelog carries (both tables
        are bytes to bytes: the raw codec sends them as they are)."""
        if (self.publisher is None or self.app.in_transaction or self.use_partitioner
                or not isinstance(key, bytes) or not isinstance(value, bytes | None)):
            return None
        partition = self.partition_for_key(key)  # the current event's: the key's own partition
        if partition is not None:
            self._queued.append((partition, key, value))
        return partition

    def on_key_set(self, key: Any, value: Any) -> None:
        partition = self._queue(key, value)
        if partition is None:
            super().on_key_set(key, value)
            return
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        partition = self._queue(key, None)
        if partition is None:
            super().on_key_del(key)
            return
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)

    def _new_store_by_url(self, url: Any) -> Any:
        if self.memory is None or not str(url).startswith("rocksdb:"):
            return super()._new_store_by_url(url)
        return SharedStore(url, self.app, self, memory=self.memory, table_name=self.name,
                           key_type=self.key_type, key_serializer=self.key_serializer,
                           value_serializer=self.value_serializer, value_type=self.value_type,
                           loop=self.loop, options=self.options)

    def rocksdb_bytes(self) -> dict[str, int]:
        """Memory RocksDB holds for this table on this worker, by the kind
        `interests_rocksdb_bytes` labels; empty for a store that is not RocksDB."""
        return self.data.memory_bytes() if isinstance(self.data, SharedStore) else {}

    def key_count(self) -> int:
        """Keys of this worker's active partitions; on RocksDB without filling its read cache."""
        return self.data.key_count() if isinstance(self.data, SharedStore) else sum(1 for _ in self)

    async def send_queued(self) -> None:
        """Send the changelog records of the writes so far; `stored()` awaits their acknowledgements."""
        queued, self._queued = self._queued, []
        if queued:
            assert self.publisher is not None
            topic = self.changelog_topic.get_topic_name()
            for p, key, value in queued:
                self._sent.append(await self.publisher.send(topic, key, value, partition=p))

    async def stored(self) -> None:
        """Wait until every write so far is acknowledged by the broker; raises if one failed. Each
        partition's newest acknowledged changelog offset is then recorded in the store (two calls
        at once record the larger)."""
        await self.send_queued()
        sent, unstored = list(self._sent), list(self._unstored)
        if sent:
            topic = self.changelog_topic.get_topic_name()
            for metadata in await asyncio.gather(*sent):
                if metadata.offset > self._persisted.get(metadata.partition, -1):
                    self._persisted[metadata.partition] = metadata.offset
                    self.data.set_persisted_offset(TP(topic, metadata.partition), metadata.offset)
            done = set(sent)
            self._sent = [f for f in self._sent if f not in done]
        if unstored:
            await asyncio.gather(*unstored)
            done = set(unstored)
            self._unstored = [f for f in self._unstored if f not in done]


@dataclass(frozen=True)
class Tables:
    users: StoredTable  # user id (bytes) -> UserState.to_bytes(); changelogged
    item_rows: StoredTable  # item id (bytes) -> ItemRow JSON; co-partitioned with item-pairs


def store_options(settings: Settings) -> dict[str, int]:
    """RocksDB sizes per table partition. RocksDB's defaults (Faust's: 64 MB memtables, three of
    them, and a 2 GB block cache) are for one big database; a worker opens one per table
    partition, and with the defaults its memory grew by every state written (55 MB a minute at
    300 events/s) toward gigabytes before the first flush. The cache and the memtables' total
    are the table's, shared by its partitions (`TableMemory`)."""
    return {"write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024, "max_write_buffer_number": 2}


def stored_table(app: faust.App, name: str, **kwargs: Any) -> StoredTable:
    """What `app.Table(name, ...)` does, with this class."""
    table = StoredTable(app, name=name, beacon=app.tables.beacon, **kwargs)
    app.tables.add(table)
    return table


def declare_tables(app: faust.App, settings: Settings) -> Tables:
    rocksdb = settings.store.startswith("rocksdb")
    options = store_options(settings) if rocksdb else None

    def memory() -> TableMemory | None:
        if not rocksdb:
            return None
        return TableMemory.of(settings.rocksdb_block_cache_mb, settings.rocksdb_memtables_mb)

    users_name, rows_name = TABLE_NAMES
    users = stored_table(
        app,
        users_name,
        default=None,
        key_type=bytes,  # bytes <-> the "raw" codec: no JSON, no pickle
        value_type=bytes,
        partitions=settings.partitions,
        options=options,
        memory=memory(),
        help="Per-user interest state, co-partitioned with the events topic.",
    )
    item_rows = stored_table(
        app,
        rows_name,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        options=None if options is None else dict(options),  # Faust's store consumes the dict
        memory=memory(),
        help="Per-item co-occurrence row, count and decayed popularity, keyed like item-pairs.",
    )
    return Tables(users=users, item_rows=item_rows)
