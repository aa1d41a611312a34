"""A group-less kafka-python reader of a whole topic, every partition from its first record."""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.connection import client_options
from streams.settings import Settings


def read_from_beginning(settings: Settings, name: str, *, full_name: bool = False,
                        **options: Any) -> KafkaConsumer:
    """`name` is the topic's short name ("recommendations"), or its whole name with `full_name`
    (a changelog); `options` go to KafkaConsumer."""
    topic = name if full_name else settings.topic(name)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                             **client_options(settings), **options)
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return consumer


def latest_values(settings: Settings, name: str, *, full_name: bool = False) -> dict[bytes, bytes | None]:
    """The last value per key of a whole topic, read to its end (None: a tombstone)."""
    consumer = read_from_beginning(settings, name, full_name=full_name, consumer_timeout_ms=1500,
                                   fetch_max_wait_ms=50)
    try:
        return {record.key: record.value for record in consumer}
    finally:
        consumer.close()
