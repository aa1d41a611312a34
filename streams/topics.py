"""Every topic, in flow order. Keys are raw bytes (user or item id), values raw JSON bytes."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.settings import Settings

COMPACTED = {"cleanup.policy": "compact"}


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
COMPACTED_TOPICS = ("items", "item-vectors", "item-neighbours", "recommendations")  # latest per key


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    def topic(name: str, compacted: bool = False) -> faust.TopicT:
        return app.topic(
            settings.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            config=COMPACTED if compacted else None,
        )

    return Topics(
        items=topic("items", "items" in COMPACTED_TOPICS),
        item_vectors=topic("item-vectors", "item-vectors" in COMPACTED_TOPICS),
        events=topic("events"),
        item_pairs=topic("item-pairs"),
        item_neighbours=topic("item-neighbours", "item-neighbours" in COMPACTED_TOPICS),
        recommendations=topic("recommendations", "recommendations" in COMPACTED_TOPICS),
        dlq=topic("dlq"),
    )
