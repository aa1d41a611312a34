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
    recommendations: faust.TopicT  # refreshed top-k, key = user id
    dlq: faust.TopicT  # what could not be processed, and why


TOPIC_NAMES = ("items", "item-vectors", "events", "recommendations", "dlq")


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
        items=topic("items", compacted=True),
        item_vectors=topic("item-vectors", compacted=True),
        events=topic("events"),
        recommendations=topic("recommendations"),
        dlq=topic("dlq"),
    )
