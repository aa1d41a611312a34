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
from collections.abc import Callable, Sequence
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
FLUSH_STEP_S = 0.002  # s: work between two pauses of a flush
FLUSH_BACKOFF = 5.0  # B: after each step, pause B times as long as the step took


class Pacer:
    """Holds a long job to a share of the event loop: after each `step_s` of work it pauses
    `backoff` times as long, so the job takes at most 1 / (1 + backoff) of the loop's time
    and the interest agent, whose lists wait on the loop, the rest. A flush that runs long
    lets the next one collect more deltas per row, which it merges once: its work per event
    falls as it lags, so it does not fall behind for good."""

    def __init__(self, backoff: float = FLUSH_BACKOFF, step_s: float = FLUSH_STEP_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.backoff, self.step_s, self.clock = backoff, step_s, clock
        self._since = clock()

    def due(self) -> bool:
        return self.clock() - self._since >= self.step_s

    async def pause(self) -> None:
        await asyncio.sleep(self.backoff * (self.clock() - self._since))
        self._since = self.clock()


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
    pacer = Pacer()
    combined: dict[str, RowDelta] = {}
    context: dict[str, Any] = {}  # item id -> an event of its partition, for the table's context
    for event in batch:  # a message holds up to a whole interest batch's pairs
        if pacer.due():
            await pacer.pause()
        try:
            deltas = parse_group(event.message.value, event.message.partition, settings.partitions)
        except Invalid as error:
            send_to_dlq(topics.dlq, metrics, event, error)
            continue
        add_into(combined, deltas, config.half_life_s)
        context.update(dict.fromkeys(deltas, event))
    topic = topics.item_neighbours.get_topic_name()
    stored: list[asyncio.Future[None]] = []
    for item_id, delta in combined.items():
        if pacer.due():
            # the rows merged so far go out now: the broker takes a flush as a stream of
            # small requests, not megabytes at once that the interest agent's acks queue behind
            stored.append(asyncio.ensure_future(tables.item_rows.stored()))
            await pacer.pause()
        key = item_id.encode("utf-8")
        with event_context(context[item_id]):  # the row's own partition
            raw = tables.item_rows.get(key)
            row = merge_row(None if raw is None else ItemRow.from_json(raw), delta, config).to_json()
            tables.item_rows[key] = row
        await publisher.send(topic, key, row)
    # rows and their changelog records stored before the batch's offsets are committed
    await asyncio.gather(publisher.flush(), tables.item_rows.stored(), *stored)
    metrics.neighbours_flush.observe(time.perf_counter() - started)
    metrics.item_rows_published.inc(len(combined))


def parse_row(raw: bytes) -> ItemRow:
    try:
        return ItemRow.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"unreadable item row: {exc}") from exc
