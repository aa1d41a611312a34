"""Stage 3, co-occurrence: item-pairs deltas -> each item's row (a table partitioned by item) ->
the item-neighbours topic, which every worker replicates in full for scoring.

The interest stage adds up a batch's deltas per row and sends one message per row, keyed by the
row's item; this stage owns the rows of its partitions, merges, and publishes each changed row
once per batch. A redelivered delta is counted again (at-least-once): a bounded overcount.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from cf.neighbours import ItemRow, RowDelta, merge_row
from streams.dead_letters import send_to_dlq
from streams.event_context import event_context
from streams.metrics import Metrics
from streams.records import Invalid
from streams.settings import Settings
from streams.tables import Tables
from streams.topics import Topics

log = logging.getLogger(__name__)


def parse_delta(key: bytes | None, raw: bytes | None) -> RowDelta:
    if not key:
        raise Invalid("missing_field", "item-pairs record without a key (the row's item id)")
    try:
        return RowDelta.from_json(raw or b"")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Invalid("bad_value", f"unreadable co-occurrence delta: {exc}") from exc


async def merge_deltas(batch: Sequence[Any], settings: Settings, topics: Topics, tables: Tables,
                       metrics: Metrics) -> None:
    config = settings.cooc()
    changed: dict[bytes, ItemRow] = {}
    for event in batch:
        key = event.message.key
        try:
            delta = parse_delta(key, event.message.value)
        except Invalid as error:
            send_to_dlq(topics.dlq, metrics, event, error)
            continue
        with event_context(event):  # the row's own partition
            raw = tables.item_rows.get(key)
            row = merge_row(None if raw is None else ItemRow.from_json(raw), delta, config)
            tables.item_rows[key] = row.to_json()
        changed[key] = row
    for key, row in changed.items():
        topics.item_neighbours.send_soon(key=key, value=row.to_json())
    metrics.item_rows_published.inc(len(changed))


def parse_row(raw: bytes) -> ItemRow:
    try:
        return ItemRow.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable item row: {exc}") from exc
