"""Every table, in flow order."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.settings import Settings


@dataclass(frozen=True)
class Tables:
    users: faust.types.TableT  # user id (bytes) -> UserState.to_bytes(); changelogged
    item_rows: faust.types.TableT  # item id (bytes) -> ItemRow JSON; co-partitioned with item-pairs


def declare_tables(app: faust.App, settings: Settings) -> Tables:
    users = app.Table(
        "users",
        default=None,
        key_type=bytes,  # bytes <-> the "raw" codec: no JSON, no pickle
        value_type=bytes,
        partitions=settings.partitions,
        help="Per-user interest state, co-partitioned with the events topic.",
    )
    item_rows = app.Table(
        "item_rows",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help="Per-item co-occurrence row, count and decayed popularity, keyed like item-pairs.",
    )
    return Tables(users=users, item_rows=item_rows)
