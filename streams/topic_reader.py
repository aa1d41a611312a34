"""A group-less kafka-python reader of a whole topic, every partition from its first record."""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.settings import Settings


def read_from_beginning(settings: Settings, name: str, **options: Any) -> KafkaConsumer:
    """`name` is the topic's short name ("recommendations"); `options` go to KafkaConsumer."""
    topic = settings.topic(name)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False, **options)
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return consumer
