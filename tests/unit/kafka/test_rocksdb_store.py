"""A worker's RocksDB databases draw on one block cache and one write-buffer budget, whatever the
number of tables and partitions it holds."""

from __future__ import annotations

from pathlib import Path

import faust

from pipeline.kafka.rocksdb_store import MEMORY_OPTION, WorkerRocksDBMemory, table_store_url
from pipeline.kafka.tables import BLOCK_CACHE_BYTES, StageTables, create_tables
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import Settings


def worker_tables(data_dir: Path) -> StageTables:
    settings = Settings()
    app = faust.App("rocksdb-store-test", store=table_store_url(settings.table_store), datadir=str(data_dir))
    return create_tables(app, TopicCatalog.load(settings.kafka.topics_file))


def test_every_database_of_a_worker_shares_one_block_cache_and_one_write_buffer_budget(tmp_path: Path) -> None:
    tables = worker_tables(tmp_path)
    databases = [table.data._db_for_partition(partition) for table in (tables.status, tables.last_known) for partition in (0, 1)]
    memory = tables.status.options[MEMORY_OPTION]
    assert isinstance(memory, WorkerRocksDBMemory)
    assert tables.last_known.options[MEMORY_OPTION] is memory

    for number, database in enumerate(databases):
        database.put(b"record-%d" % number, b"x" * 100_000)
        database.flush()
        assert database.get(b"record-%d" % number) == b"x" * 100_000  # read through the block cache

    assert {database.property_int_value("rocksdb.block-cache-capacity") for database in databases} == {BLOCK_CACHE_BYTES}
    usage = {database.property_int_value("rocksdb.block-cache-usage") for database in databases}
    assert len(usage) == 1 and usage.pop() >= len(databases) * 100_000  # one cache holds every database's blocks
    databases[0].put(b"one-more", b"y" * 100_000)
    assert memory.write_buffers.get_usage() >= 100_000  # memtables count against the worker's budget
