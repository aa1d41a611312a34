"""Every topic, in flow order. Keys are raw bytes (user or item id), values raw JSON bytes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.settings import Settings


@dataclass(frozen=True)
class Topics:
    items: faust.TopicT  # catalog upserts and tombstones, key = item id
    item_vectors: faust.TopicT  # each item embedded once, read in full by every worker
    events: faust.TopicT  # user events, key = user id
    item_pairs: faust.TopicT  # co-occurrence deltas of a batch, key = the item whose row they add to
    item_neighbours: faust.TopicT  # each item's co-occurrence row, read in full by every worker
    recommendations: faust.TopicT  # refreshed top-k, key = user id
    dlq: faust.TopicT  # what could not be processed, and why


TOPIC_NAMES = ("items", "item-vectors", "events", "item-pairs", "item-neighbours", "recommendations",
               "dlq")
TABLE_NAMES = ("users", "item_rows")  # streams/tables.py: each table has a changelog topic
COMPACTED_TOPICS = ("items", "item-vectors", "item-neighbours", "recommendations")  # latest per key


def topic_config(name: str, settings: Settings) -> dict[str, str]:
    """The broker-side configuration of a topic (short name) the worker creates: compacted ones
    keep each key's latest value (an erased user's tombstone, then nothing); the others keep a
    time window: events long enough to replay them into a new model, dead letters to inspect them."""
    if name in COMPACTED_TOPICS:
        return {"cleanup.policy": "compact"}
    hours = settings.dlq_retention_h if name == "dlq" else settings.events_retention_h
    return {"cleanup.policy": "delete", "retention.ms": str(int(hours * 3_600_000))}


def changelog_topics(settings: Settings) -> list[str]:
    """Faust's name for each table's changelog topic: `<app id>-<table>-changelog`."""
    return [f"{settings.app_id}-{table}-changelog" for table in TABLE_NAMES]


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    def topic(name: str) -> faust.TopicT:
        return app.topic(
            settings.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            config=topic_config(name, settings),
        )

    return Topics(
        items=topic("items"),
        item_vectors=topic("item-vectors"),
        events=topic("events"),
        item_pairs=topic("item-pairs"),
        item_neighbours=topic("item-neighbours"),
        recommendations=topic("recommendations"),
        dlq=topic("dlq"),
    )
