"""Create the app's topics up front, so producers and workers agree on partition counts."""

from __future__ import annotations

import contextlib
import logging
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.settings import Settings
from streams.topics import COMPACTED, COMPACTED_TOPICS, TOPIC_NAMES

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    _create(settings, [
        NewTopic(
            settings.topic(name),
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            topic_configs=dict(COMPACTED) if name in COMPACTED_TOPICS else {},
        )
        for name in TOPIC_NAMES
    ], timeout_s)


def create_topics(settings: Settings, names: list[str], timeout_s: float = 30.0) -> None:
    """Plain topics of full names (benchmarks), with the app's partition count."""
    _create(settings, [NewTopic(name, num_partitions=settings.partitions,
                                replication_factor=settings.replication_factor) for name in names], timeout_s)


def _create(settings: Settings, topics: list[NewTopic], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="interests-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t.name not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                admin.create_topics(wanted)
            log.info("created topics %s", [t.name for t in wanted])
    finally:
        admin.close()
