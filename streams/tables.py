"""Every table, in flow order."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.settings import Settings


@dataclass(frozen=True)
class Tables:
    users: faust.types.TableT  # user id (bytes) -> UserState.to_bytes(); changelogged
    item_rows: faust.types.TableT  # item id (bytes) -> ItemRow JSON; co-partitioned with item-pairs


def store_options(settings: Settings) -> dict[str, int]:
    """RocksDB sizes per table partition. RocksDB's defaults (Faust's: 64 MB memtables, three of
    them, and a 2 GB block cache) are for one big database; a worker opens one per table
    partition, and with the defaults its memory grew by every state written (55 MB a minute at
    300 events/s) toward gigabytes before the first flush."""
    mb = 1024 * 1024
    return {"write_buffer_size": settings.rocksdb_write_buffer_mb * mb, "max_write_buffer_number": 2,
            "block_cache_size": settings.rocksdb_block_cache_mb * mb,
            "block_cache_compressed_size": settings.rocksdb_block_cache_mb * mb // 4}


def declare_tables(app: faust.App, settings: Settings) -> Tables:
    options = store_options(settings) if settings.store.startswith("rocksdb") else None
    users = app.Table(
        "users",
        default=None,
        key_type=bytes,  # bytes <-> the "raw" codec: no JSON, no pickle
        value_type=bytes,
        partitions=settings.partitions,
        options=options,
        help="Per-user interest state, co-partitioned with the events topic.",
    )
    item_rows = app.Table(
        "item_rows",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        options=None if options is None else dict(options),  # Faust's store consumes the dict
        help="Per-item co-occurrence row, count and decayed popularity, keyed like item-pairs.",
    )
    return Tables(users=users, item_rows=item_rows)
