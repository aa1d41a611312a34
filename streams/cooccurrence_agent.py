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
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from kafka.partitioner.default import murmur2

from cf.neighbours import ItemRow, RowDelta, add_into, merge_row
from streams.dead_letters import send_to_dlq
from streams.event_context import event_context
from streams.metrics import Metrics
from streams.publisher import Publisher
from streams.records import Invalid
from streams.settings import Settings
from streams.tables import Tables
from streams.topics import Topics

log = logging.getLogger(__name__)
YIELD_EVERY = 20  # rows merged between two turns of the event loop (a few ms)
FLUSH_BACKOFF = 2.0  # B: after each step of rows, pause B times as long as the step took


def row_partition(item_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key `item_id` (murmur2)."""
    return (murmur2(item_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


def pair_groups(deltas: dict[str, RowDelta], partitions: int) -> dict[int, bytes]:
    """One item-pairs message per partition: `{"rows": {item_id: delta}}`."""
    groups: dict[int, dict[str, object]] = {}
    for item_id, delta in deltas.items():
        groups.setdefault(row_partition(item_id, partitions), {})[item_id] = delta.to_obj()
    return {p: orjson.dumps({"rows": rows}) for p, rows in groups.items()}


def parse_group(raw: bytes | None, partition: int, partitions: int) -> dict[str, RowDelta]:
    try:
        rows = orjson.loads(raw or b"")["rows"]
        deltas = {str(item): RowDelta.from_obj(d) for item, d in rows.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Invalid("bad_value", f"unreadable co-occurrence deltas: {exc}") from exc
    strays = [i for i in deltas if row_partition(i, partitions) != partition]
    if strays:
        raise Invalid("key_mismatch", f"rows {strays[:3]} belong to other partitions than {partition}")
    return deltas


async def merge_deltas(batch: Sequence[Any], settings: Settings, topics: Topics, tables: Tables,
                       metrics: Metrics, publisher: Publisher) -> None:
    """Combine the batch's deltas per row first, then read, merge, write and publish each
    changed row once: a row's cost is per batch, not per delta. The rows' changelog records go
    out with them, through `publisher` (`StoredTable.stored`), not through Faust's send buffer,
    which stops delivering every stream's messages while it holds over 100 records."""
    started = time.perf_counter()
    config = settings.cooc()
    combined: dict[str, RowDelta] = {}
    context: dict[str, Any] = {}  # item id -> an event of its partition, for the table's context
    for event in batch:
        await asyncio.sleep(0)  # a message holds up to a whole interest batch's pairs: tens of ms
        try:
            deltas = parse_group(event.message.value, event.message.partition, settings.partitions)
        except Invalid as error:
            send_to_dlq(topics.dlq, metrics, event, error)
            continue
        add_into(combined, deltas, config.half_life_s)
        context.update(dict.fromkeys(deltas, event))
    rows: list[tuple[bytes, bytes | None]] = []
    chunk_started = time.perf_counter()
    for n, (item_id, delta) in enumerate(combined.items()):
        if n % YIELD_EVERY == YIELD_EVERY - 1:
            # paced: the flush takes at most 1 / (1 + B) of the event loop's time, whatever the
            # number of changed rows, and the interest agent keeps the rest
            await asyncio.sleep(FLUSH_BACKOFF * (time.perf_counter() - chunk_started))
            chunk_started = time.perf_counter()
        key = item_id.encode("utf-8")
        with event_context(context[item_id]):  # the row's own partition
            raw = tables.item_rows.get(key)
            row = merge_row(None if raw is None else ItemRow.from_json(raw), delta, config).to_json()
            tables.item_rows[key] = row
        rows.append((key, row))
    await asyncio.gather(publisher.publish(topics.item_neighbours.get_topic_name(), rows),
                         tables.item_rows.stored())  # both stored before the offsets are committed
    metrics.neighbours_flush.observe(time.perf_counter() - started)
    metrics.item_rows_published.inc(len(rows))


def parse_row(raw: bytes) -> ItemRow:
    try:
        return ItemRow.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"unreadable item row: {exc}") from exc
