"""The tables on RocksDB (no broker): every partition of a table shares one memory budget."""

from __future__ import annotations

import time
from pathlib import Path

import faust

from streams.settings import Settings
from streams.table_store import MB, SharedStore, count_keys
from streams.tables import declare_tables

SLACK = 1.25  # RocksDB's own accounting: a cache's capacity is a target a pinned block may pass


def test_a_tables_partitions_share_one_cache_and_one_memtable_budget(tmp_path: Path) -> None:
    # a partition's own memtable (8 MB) would hold all it is given (3 MB); the table's budget is 2 MB
    settings = Settings(data_dir=tmp_path, partitions=4, rocksdb_write_buffer_mb=8,
                        rocksdb_memtables_mb=2, rocksdb_block_cache_mb=2)
    app = faust.App("table-store", broker="memory://", store="rocksdb://", datadir=str(tmp_path))
    tables = declare_tables(app, settings)
    users, rows = tables.users.data, tables.item_rows.data
    assert isinstance(users, SharedStore) and isinstance(rows, SharedStore)
    assert users.memory is not rows.memory  # each table its own budget
    dbs = [users._db_for_partition(p) for p in range(settings.partitions)]
    value = bytes(range(256)) * 8  # 2 KB, incompressible enough for the block cache to hold it
    keys = [f"user-{n}".encode() for n in range(6000)]  # 12 MB written over the four partitions
    for n, key in enumerate(keys):
        dbs[n % 4][key] = value

    # the budget counts memtables' arenas, allocated in blocks of write_buffer / 8: each partition's
    # active memtable may hold one it has just begun, and every memtable's arena counts its 2 KB
    # inline block too (RocksDB's `Arena::kInlineSize`; an active and a flushing one per partition)
    bound = 2 * MB + settings.partitions * (8 * MB // 8 + 2 * 2048)
    # flushes run in RocksDB's background threads (slow on a busy machine), and the budget acts on
    # writes: a memtable that grew while its partition's last flush ran is switched out by the
    # partition's next write, as a running worker's next state would
    deadline = time.monotonic() + 30
    while tables.users.rocksdb_bytes()["memtables"] > bound and time.monotonic() < deadline:
        if not any(db.property_int_value("rocksdb.num-immutable-mem-table") for db in dbs):
            for p, db in enumerate(dbs):
                db[keys[p]] = value
        time.sleep(0.05)
    assert 0 < tables.users.rocksdb_bytes()["memtables"] <= bound  # 12 MB without the budget
    for n, key in enumerate(keys):
        assert dbs[n % 4][key] == value
    read = tables.users.rocksdb_bytes()
    assert 0 < read["block_cache"] <= SLACK * 2 * MB  # megabytes of files read through one 2 MB cache
    assert set(read) == {"memtables", "block_cache", "table_readers"}
    assert tables.item_rows.rocksdb_bytes()["block_cache"] < read["block_cache"]  # nothing read there


def test_the_memory_store_has_no_rocksdb_figures(tmp_path: Path) -> None:
    app = faust.App("table-store-memory", broker="memory://", store="memory://", datadir=str(tmp_path))
    tables = declare_tables(app, Settings(data_dir=tmp_path, store="memory://"))
    assert tables.users.rocksdb_bytes() == {} and not isinstance(tables.users.data, SharedStore)


def test_counting_a_tables_keys_leaves_its_read_cache_as_it_was(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, partitions=2, rocksdb_block_cache_mb=16)
    app = faust.App("table-count", broker="memory://", store="rocksdb://", datadir=str(tmp_path))
    tables = declare_tables(app, settings)
    store = tables.users.data
    assert isinstance(store, SharedStore)
    dbs = [store._db_for_partition(p) for p in range(settings.partitions)]
    value = bytes(range(256)) * 8  # 2 KB
    for n in range(3000):  # 6 MB of files once flushed
        dbs[n % 2][f"user-{n}".encode()] = value
    dbs[0][store.offset_key] = b"41"  # Faust's own record is not a key of the table
    for db in dbs:
        db.flush()
    before = tables.users.rocksdb_bytes()["block_cache"]
    assert count_keys(dbs, store.offset_key) == 3000
    assert tables.users.rocksdb_bytes()["block_cache"] - before < MB  # a cached scan: 6 MB
    assert sum(1 for db in dbs for _ in db.items()) == 3001  # a scan through the cache ...
    assert tables.users.rocksdb_bytes()["block_cache"] - before > 4 * MB  # ... fills it
