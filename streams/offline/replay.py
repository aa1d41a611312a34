"""Replay a dataset to Kafka the way apps would produce it: items first, then events in time order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kafka import KafkaProducer

from streams.connection import client_options
from streams.offline.datasets import Dataset, Interaction
from streams.ops.topic_reader import read_from_beginning
from streams.records import dumps
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReplayStats:
    items: int = 0
    events: int = 0
    catalog_wait_s: float = 0.0
    send_times: dict[str, float] = field(default_factory=dict)  # event_id -> wall time sent


def event_json(x: Interaction, event_id: str) -> bytes:
    event: dict[str, object] = {
        "event_id": event_id, "user_id": x.user_id, "type": x.type, "item_id": x.item_id,
        "ts": x.ts_ms,
    }
    if x.rating is not None:
        event["rating"] = x.rating
    return dumps(event)


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=5,
                         retries=5, client_id="interests-replay", **client_options(settings))


def publish_items(settings: Settings, dataset: Dataset, prod: KafkaProducer) -> int:
    topic = settings.topic("items")
    for item in dataset.items:
        value = {"item_id": item.item_id, "title": item.title, "tags": list(item.tags), "ts": 0}
        if item.text:
            value["text"] = item.text
        prod.send(topic, key=item.item_id.encode(), value=dumps(value))
    prod.flush()
    return len(dataset.items)


def wait_for_catalog(settings: Settings, item_ids: set[str], timeout_s: float = 300.0) -> float:
    """Block until every item id has a vector on the item-vectors topic: the worker has embedded
    the catalog, so no event is scored against a half-built one."""
    started = time.monotonic()
    consumer = read_from_beginning(settings, "item-vectors", consumer_timeout_ms=500,
                                   fetch_max_wait_ms=100)
    try:
        missing = set(item_ids)
        while missing:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{len(missing)} items still not embedded after {timeout_s:.0f} s")
            for record in consumer:
                if record.key is not None:
                    missing.discard(record.key.decode())
    finally:
        consumer.close()
    return time.monotonic() - started


def paced(events: list[Interaction], rate: float) -> Iterator[Interaction]:
    """Yield events no faster than `rate` per second (0 = as fast as possible)."""
    started = time.monotonic()
    for n, x in enumerate(events):
        if rate > 0:
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield x


def replay(
    settings: Settings, dataset: Dataset, *, rate: float = 0.0, limit: int | None = None,
    wait_catalog: bool = True, on_sent: Callable[[str, str, float], None] | None = None,
) -> ReplayStats:
    stats = ReplayStats()
    prod = producer(settings)
    try:
        stats.items = publish_items(settings, dataset, prod)
        if wait_catalog:
            stats.catalog_wait_s = wait_for_catalog(settings, {i.item_id for i in dataset.items})
        topic = settings.topic("events")
        events = dataset.interactions[:limit] if limit else dataset.interactions
        for n, x in enumerate(paced(events, rate)):
            event_id = f"{dataset.name}-{n}"
            prod.send(topic, key=x.user_id.encode(), value=event_json(x, event_id))
            now = time.time()
            stats.send_times[event_id] = now
            stats.events += 1
            if on_sent is not None:
                on_sent(x.user_id, event_id, now)
        prod.flush()
    finally:
        prod.close()
    return stats
