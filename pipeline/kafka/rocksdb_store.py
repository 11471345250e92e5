"""Faust's RocksDB table store, with one block cache and one write-buffer budget per worker.

A worker opens one RocksDB database per table and partition it holds, active and standby (up to 36),
and Faust's store gives each its own block cache and its own memtables, so a worker's memory grew
with the number of databases times their caps. Here every database of a worker draws on the same two
budgets (``WorkerRocksDBMemory``, made once per app from ``settings.table_block_cache_mib`` and
``table_write_buffers_mib`` and handed to each table in its ``options``). Used through the
``faust.stores`` entry point (pyproject.toml) as the ``contactsync-rocksdb://`` scheme;
``settings.table_store`` "rocksdb://" means this store (``table_store_url``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rocksdict
from faust.stores import rocksdb

STORE_SCHEME = "contactsync-rocksdb"
# What a table's options carry the worker's budgets under (Faust passes unknown options through).
MEMORY_OPTION = "worker_memory"
_MIB = 1024**2


@dataclass(frozen=True)
class WorkerRocksDBMemory:
    """The budgets every RocksDB database of one worker shares."""

    block_cache: rocksdict.Cache
    write_buffers: rocksdict.WriteBufferManager

    @classmethod
    def of_mib(cls, block_cache_mib: int, write_buffers_mib: int) -> WorkerRocksDBMemory:
        # allow_stall=False: near the budget, RocksDB flushes the memtable being written to; it never
        # blocks a write
        return cls(
            rocksdict.Cache(block_cache_mib * _MIB), rocksdict.WriteBufferManager(write_buffers_mib * _MIB, False)
        )


def table_store_url(table_store: str) -> str:
    """The Faust store URL for ``settings.table_store``: RocksDB means this module's store."""
    return f"{STORE_SCHEME}://" if table_store == "rocksdb://" else table_store


class SharedMemoryOptions(rocksdb.RocksDBOptions):
    """Faust's options for one database, drawing on the worker's budgets instead of its own."""

    def __init__(self, memory: WorkerRocksDBMemory, **options: Any) -> None:
        super().__init__(**options)
        self.memory = memory

    def as_options(self) -> rocksdict.Options:
        options: rocksdict.Options = super().as_options()
        table_format = rocksdict.BlockBasedOptions()  # Faust's table format, with the shared cache
        table_format.set_bloom_filter(self.bloom_filter_size, True)
        table_format.set_block_cache(self.memory.block_cache)
        table_format.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table_format)
        options.set_write_buffer_manager(self.memory.write_buffers)
        return options

    def open(self, path: Path, *, read_only: bool = False) -> rocksdict.Rdict:
        database: rocksdict.Rdict = super().open(path, read_only=read_only)
        database.set_write_options(_WITHOUT_WAL)
        return database


# Rows are written without RocksDB's write-ahead log (a third of a put's cost). A crash then loses
# the writes since the last memtable flush, never an earlier one: what survives is a prefix of the
# writes. The changelog offset Faust recovers from (``set_persisted_offset``) is written after the
# rows its changelog messages carry (``pipeline.kafka.table_rows``), so whatever offset survived,
# the rows up to it survived too, and recovery reads the changelog again from there.
_WITHOUT_WAL = rocksdict.WriteOptions()
_WITHOUT_WAL.disable_wal = True  # type: ignore[method-assign,assignment]  # a property; the stub says a method


class Store(rocksdb.Store):
    """Faust's RocksDB store (rocksdict driver) whose databases share the worker's memory budgets."""

    def __init__(self, *args: Any, options: dict[str, Any], **kwargs: Any) -> None:
        memory = options.get(MEMORY_OPTION)
        if not isinstance(memory, WorkerRocksDBMemory):
            raise TypeError(f"a {STORE_SCHEME} table needs options[{MEMORY_OPTION!r}] (see create_tables)")
        # A copy: Faust's store pops keys from the dict it is given, and Faust builds a second store
        # from the same table's options.
        database_options = {name: value for name, value in options.items() if name != MEMORY_OPTION}
        super().__init__(*args, options={**database_options, "driver": "rocksdict"}, **kwargs)
        self.rocksdb_options = SharedMemoryOptions(memory, **database_options, use_rocksdict=True)
