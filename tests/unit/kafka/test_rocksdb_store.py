"""A worker's RocksDB databases draw on one block cache and one write-buffer budget, whatever the
number of tables and partitions it holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import faust
from faust.types import TP

from pipeline.kafka.rocksdb_store import MEMORY_OPTION, WorkerRocksDBMemory, table_store_url
from pipeline.kafka.tables import StageTables, create_tables
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import Settings


def worker_tables(data_dir: Path, settings: Settings | None = None) -> StageTables:
    settings = settings or Settings()
    app = faust.App("rocksdb-store-test", store=table_store_url(settings.table_store), datadir=str(data_dir))
    memory = WorkerRocksDBMemory.of_mib(settings.table_block_cache_mib, settings.table_write_buffers_mib)
    return create_tables(app, TopicCatalog.load(settings.kafka.topics_file), memory)


def test_every_database_of_a_worker_shares_one_block_cache_and_one_write_buffer_budget(tmp_path: Path) -> None:
    tables = worker_tables(tmp_path, Settings(table_block_cache_mib=3, table_write_buffers_mib=5))
    databases = [table.data._db_for_partition(partition) for table in (tables.status, tables.last_known) for partition in (0, 1)]
    memory = tables.status.options[MEMORY_OPTION]
    assert isinstance(memory, WorkerRocksDBMemory)
    assert tables.last_known.options[MEMORY_OPTION] is memory

    for number, database in enumerate(databases):
        database.put(b"record-%d" % number, b"x" * 100_000)
        database.flush()
        assert database.get(b"record-%d" % number) == b"x" * 100_000  # read through the block cache

    assert {database.property_int_value("rocksdb.block-cache-capacity") for database in databases} == {3 * 1024**2}
    assert memory.write_buffers.get_buffer_size() == 5 * 1024**2
    usage = {database.property_int_value("rocksdb.block-cache-usage") for database in databases}
    assert len(usage) == 1 and usage.pop() >= len(databases) * 100_000  # one cache holds every database's blocks
    databases[0].put(b"one-more", b"y" * 100_000)
    assert memory.write_buffers.get_usage() >= 100_000  # memtables count against the worker's budget


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from faust.types import TP
from tests.unit.kafka.test_rocksdb_store import worker_tables

store = worker_tables(Path(sys.argv[1])).status.data
database, tp = store._db_for_partition(0), TP("changelog", 0)
for offset in range(20_000):  # as a stage writes: the row, then (once its changelog is acked) the offset
    database.put(b"record-%d" % offset, b"%d" % offset * 100)
    store.set_persisted_offset(tp, offset)
os._exit(0)  # a crash: nothing flushed or closed
"""


def test_after_a_crash_every_row_up_to_the_recovered_changelog_offset_is_there(tmp_path: Path) -> None:
    """Rows go without the write-ahead log, so a crash loses the writes since the last flush; what is
    left is a prefix, so every row the surviving changelog offset covers is there, and recovery reads
    the changelog again from that offset."""
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], check=True, cwd=Path.cwd())  # noqa: S603

    store = worker_tables(tmp_path).status.data
    database = store._db_for_partition(0)
    offset = store.persisted_offset(TP("changelog", 0))
    assert offset is not None and offset < 19_999  # flushed part-way, the rest lost with the memtable
    assert all(database.get(b"record-%d" % n) == b"%d" % n * 100 for n in range(offset + 1))
    assert not [path for path in tmp_path.rglob("*.log") if path.stat().st_size > 0]  # no write-ahead log
