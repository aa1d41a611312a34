"""The worker's output producer: recommendations, co-occurrence deltas and replica topics.

A plain, batching aiokafka producer beside Faust's own, which writes the table changelogs. Faust
sends its records one at a time from a buffer, and while that buffer holds over 100 records it
stops delivering messages to every stream; outputs sent here neither wait in that buffer nor
fill it, and one request carries many records.

At least once: `flush` returns when every record sent so far is acknowledged, and every commit
of input offsets awaits it first (`streams.faust_consumer.before_commit`), so Faust commits an
input offset only after the outputs it caused are stored; an agent does not wait for the
acknowledgements of its batch before it takes the next (Kafka Streams commits the same way). A
record that failed fails every later flush too: no commit may pass it.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from streams.connection import client_options
from streams.settings import Settings


class Publisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future[RecordMetadata]] = []  # sent, not known acknowledged
        self._failed: BaseException | None = None

    async def send(self, topic: str, key: bytes, value: bytes | None,
                   partition: int | None = None) -> asyncio.Future[RecordMetadata]:
        """Queue a record (waits only when the producer's buffer is full); the future resolves
        to its metadata (partition, offset) once the broker acknowledged it."""
        if self._producer is None:
            self._producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, acks="all",
                                              linger_ms=self.settings.publish_linger_ms,
                                              max_batch_size=self.settings.producer_batch_bytes,
                                              compression_type=self.settings.compression_type,
                                              **client_options(self.settings))
            await self._producer.start()
        sent: asyncio.Future[RecordMetadata] = await self._producer.send(topic, key=key, value=value,
                                                                         partition=partition)
        self._pending.append(sent)
        return sent

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged; raises if one failed, now and at
        every later flush. Two flushes at once (a commit's and an agent's) each wait for all of
        them: a record leaves `_pending` only once a flush has seen it acknowledged."""
        if self._failed is not None:
            raise self._failed
        pending = list(self._pending)
        if not pending:
            return
        await asyncio.wait(pending)  # never raises for the records themselves: they are read below
        seen = set(pending)
        self._pending = [f for f in self._pending if f not in seen]
        for sent in pending:
            if sent.cancelled():
                self._failed = RuntimeError("a record's send was cancelled before the broker acknowledged it")
            elif sent.exception() is not None:
                self._failed = sent.exception()
            if self._failed is not None:
                raise self._failed

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
