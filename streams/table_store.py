"""RocksDB for a table: one read cache and one memtable budget for all of its partitions.

Faust opens one RocksDB database per table partition, each with a block cache and memtables of
its own (faust-streaming 0.15.3, `RocksDBOptions.as_options`). Each of those fills up to its own
bound before it evicts: the cache with blocks of files compaction already replaced, so a worker's
memory grew for minutes with every partition it held (4 to 152 MB of RocksDB in a 10-minute soak
at 300 events/s) and its bound was the partition count times the setting. RocksDB's own advice
for many databases in one process is one `Cache` and one `WriteBufferManager` shared by them all
(https://github.com/facebook/rocksdb/wiki/Write-Buffer-Manager); index and filter blocks are
charged to that cache too, so a table's RocksDB memory on a worker is bounded by two settings,
whatever number of partitions it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import rocksdict
from faust.stores.rocksdb import DB, RocksDBOptions, Store

MB = 1024 * 1024


@dataclass(frozen=True)
class TableMemory:
    """What every partition of one table on this worker shares."""

    cache: rocksdict.Cache  # data, index and filter blocks read
    memtables: rocksdict.WriteBufferManager  # writes not yet flushed to files

    @classmethod
    def of(cls, cache_mb: int, memtables_mb: int) -> TableMemory:
        # allow_stall=False: over the budget RocksDB flushes sooner, writers never wait on it
        return cls(rocksdict.Cache(cache_mb * MB), rocksdict.WriteBufferManager(memtables_mb * MB, False))

    def usage(self, dbs: list[DB]) -> dict[str, int]:
        """Bytes held, by the kind `interests_rocksdb_bytes` labels them."""
        readers = sum(int(db.property_int_value("rocksdb.estimate-table-readers-mem") or 0) for db in dbs)
        return {"memtables": int(self.memtables.get_usage()), "block_cache": int(self.cache.get_usage()),
                "table_readers": readers}  # outside the cache: what is not charged to it


class SharedOptions(RocksDBOptions):
    """Faust's options for one partition's database, with the table's shared memory."""

    def __init__(self, memory: TableMemory, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.memory = memory

    def as_options(self) -> rocksdict.Options:
        options = super().as_options()  # Faust's (a rocksdict Options), then its cache replaced
        blocks = rocksdict.BlockBasedOptions()
        blocks.set_bloom_filter(self.bloom_filter_size, block_based=True)
        blocks.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        blocks.set_block_cache(self.memory.cache)
        blocks.set_cache_index_and_filter_blocks(True)  # charged to the cache, not kept per file
        blocks.set_pin_l0_filter_and_index_blocks_in_cache(True)  # the newest files' stay hot
        options.set_block_based_table_factory(blocks)
        options.set_write_buffer_manager(self.memory.memtables)
        return options


class SharedStore(Store):
    """Faust's RocksDB store whose partitions share one `TableMemory`."""

    def __init__(self, url: Any, app: Any, table: Any, *, memory: TableMemory, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("the table store needs the rocksdict driver (faust-streaming[rocksdict])")
        self.memory = memory
        self.rocksdb_options = SharedOptions(memory, **(self.options or {}), use_rocksdict=True)

    def memory_bytes(self) -> dict[str, int]:
        return self.memory.usage(list(self._dbs.values()))

    def key_count(self) -> int:
        """Keys of the partitions this worker serves (`count_keys`)."""
        return count_keys(self._dbs_for_actives(), self.offset_key)


def count_keys(dbs: Iterable[DB], skip: bytes) -> int:
    """Keys in these databases but `skip` (Faust's offset record), read past the block cache: a
    scan through it (Faust's `len` and iteration) loads every block of every file, so a count
    every few seconds kept the whole table, and blocks of files compaction had replaced, in the
    cache until it was full; a worker's memory grew by that for minutes."""
    past_cache = rocksdict.ReadOptions()
    past_cache.fill_cache(False)  # type: ignore[call-arg]  # the binding takes it; its stub omits it
    return sum(1 for db in dbs for key in db.keys(read_opt=past_cache) if key != skip)
