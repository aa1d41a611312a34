"""Stage 3, co-occurrence: item-pairs deltas -> each item's row (a table partitioned by item) ->
the item-neighbours topic, which every worker replicates in full for scoring.

The interest stage adds up a batch's deltas per row and sends them grouped by the partition that
owns each row's item (Kafka's own key partitioner on the item id), one message per partition;
this stage owns the rows of its partitions, merges, and publishes each changed row once per
batch (its batches span up to INTERESTS_NEIGHBOURS_FLUSH_S). A redelivered delta is counted
again (at-least-once): a bounded overcount.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from kafka.partitioner.default import murmur2

from cf.neighbours import ItemRow, RowDelta, combine, merge_row
from streams.dead_letters import send_to_dlq
from streams.event_context import event_context
from streams.global_replica import ReplicaPublisher
from streams.metrics import Metrics
from streams.records import Invalid
from streams.settings import Settings
from streams.tables import Tables
from streams.topics import Topics

log = logging.getLogger(__name__)
YIELD_EVERY = 100  # rows merged between two turns of the event loop


def row_partition(item_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key `item_id` (murmur2)."""
    return (murmur2(item_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


def pair_groups(deltas: dict[str, RowDelta], partitions: int) -> dict[int, bytes]:
    """One item-pairs message per partition: `{"rows": {item_id: delta}}`."""
    groups: dict[int, dict[str, object]] = {}
    for item_id, delta in deltas.items():
        groups.setdefault(row_partition(item_id, partitions), {})[item_id] = delta.to_obj()
    return {p: json.dumps({"rows": rows}).encode() for p, rows in groups.items()}


def parse_group(raw: bytes | None, partition: int, partitions: int) -> dict[str, RowDelta]:
    try:
        rows = json.loads(raw or b"")["rows"]
        deltas = {str(item): RowDelta.from_obj(d) for item, d in rows.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Invalid("bad_value", f"unreadable co-occurrence deltas: {exc}") from exc
    strays = [i for i in deltas if row_partition(i, partitions) != partition]
    if strays:
        raise Invalid("key_mismatch", f"rows {strays[:3]} belong to other partitions than {partition}")
    return deltas


async def merge_deltas(batch: Sequence[Any], settings: Settings, topics: Topics, tables: Tables,
                       metrics: Metrics, publisher: ReplicaPublisher) -> None:
    """Combine the batch's deltas per row first, then read, merge, write and publish each
    changed row once: a row's cost is per batch, not per delta."""
    config = settings.cooc()
    groups: list[dict[str, RowDelta]] = []
    context: dict[str, Any] = {}  # item id -> an event of its partition, for the table's context
    for event in batch:
        try:
            deltas = parse_group(event.message.value, event.message.partition, settings.partitions)
        except Invalid as error:
            send_to_dlq(topics.dlq, metrics, event, error)
            continue
        groups.append(deltas)
        context.update(dict.fromkeys(deltas, event))
    rows: list[tuple[bytes, bytes | None]] = []
    for n, (item_id, delta) in enumerate(combine(groups, config.half_life_s).items()):
        if n % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # a long flush lets the interest agent and fetchers run between rows
        key = item_id.encode("utf-8")
        with event_context(context[item_id]):  # the row's own partition
            raw = tables.item_rows.get(key)
            row = merge_row(None if raw is None else ItemRow.from_json(raw), delta, config).to_json()
            tables.item_rows[key] = row
        rows.append((key, row))
    await publisher.publish(topics.item_neighbours.get_topic_name(), rows)
    metrics.item_rows_published.inc(len(rows))


def parse_row(raw: bytes) -> ItemRow:
    try:
        return ItemRow.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable item row: {exc}") from exc
