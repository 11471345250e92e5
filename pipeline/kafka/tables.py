"""The pipeline's Faust tables, and how a batch stage writes to them.

Every table is keyed by record id and co-partitioned with the stage topic that feeds it, so the
worker that owns a record's partition owns its rows. RocksDB by default (settings.table_store), so a
restarted worker reopens its rows instead of replaying whole changelogs into memory.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import cast

import faust
import faust.tables
from faust.streams import _current_event
from faust.types import EventT

from pipeline.kafka.rocksdb_store import MEMORY_OPTION, WorkerRocksDBMemory
from pipeline.kafka.topics import TopicCatalog

# Per RocksDB database, and a worker opens one per table and partition it holds (active or standby,
# up to 36): Faust's defaults (64 MiB write buffers, up to 3, and a 2 GiB block cache each) let every
# row of a large table stay in memory (RSS grew with the records held). Rows are small (< 1 KB).
# 256 KiB buffers and a 1 MiB cache per database against 1 MiB and 2 MiB: a 100,000-record drain
# peaked at 191 MB against 218 MB, and drained no slower (benchmarks/README.md, "Memory"); the cache
# and the write buffers are now the worker's (settings.table_block_cache_mib, table_write_buffers_mib).
ROCKSDB_OPTIONS = {
    "write_buffer_size": 256 * 1024,
    "max_write_buffer_number": 2,
}


class TableManager(faust.tables.TableManager):
    """Faust's table manager without the second it sleeps before it starts (``on_start``), which
    lets tables made while agents start register first; every table here is made with the app
    (``create_tables``), before the worker starts, and one made later would raise (``add``: "Too
    late to add tables"). The group subscription waits for this start, so each worker start, and
    the start of every test's worker, was a second longer."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


@dataclass(frozen=True)
class StageTables:
    last_known: faust.Table[bytes, bytes]  # record id -> KnownContact JSON, to route and map deletes
    delivered_version: dict[str, faust.Table[bytes, bytes]]  # per provider: record id -> Delivered (version, key)
    status: faust.Table[bytes, bytes]  # per record, provider and writing stage -> ProviderStatus JSON
    field_clock: faust.Table[bytes, bytes]  # record id -> RecordClock JSON (pipeline.stages.conflict)


def create_tables(app: faust.App, catalog: TopicCatalog, memory: WorkerRocksDBMemory) -> StageTables:
    """The stage tables; their RocksDB databases draw on ``memory`` (the worker's shared budgets)."""
    options = {**ROCKSDB_OPTIONS, MEMORY_OPTION: memory}

    def table(name: str, changelog_topic: str) -> faust.Table[bytes, bytes]:
        changelog = app.topic(
            changelog_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=catalog.partitions,
            # As Faust declares its own changelogs: no stream reads them, so their offsets are not
            # acknowledged or committed. An acking topic is one the consumer expects a stream to
            # process: its livelock check logged "Stream has not started processing" at ERROR for
            # every changelog partition behind its end, every 2.5 s, in a healthy worker.
            acks=False,
        )
        table = app.Table(
            name,
            partitions=catalog.partitions,
            changelog_topic=changelog,  # declared in topics.yaml, created before any worker starts
            key_type=bytes,  # bytes means the raw codec: we encode rows with pydantic
            value_type=bytes,
            options=dict(options),  # Faust's store pops keys from the dict it is given
        )
        return cast(faust.Table[bytes, bytes], table)

    return StageTables(
        last_known=table("last-known", catalog.last_known_changelog),
        delivered_version={
            name: table(f"delivered-version.{name}", catalog.delivered_version_changelog(name))
            for name in catalog.providers
        },
        status=table("record-status", catalog.record_status_changelog),
        field_clock=table("field-clock", catalog.field_clock_changelog),
    )


class rows_of:  # noqa: N801  (used as a function: ``with rows_of(event):``; a class is cheaper per row)
    """Make table writes in this block land in ``event``'s partition.

    Faust picks a table row's partition (RocksDB shard and changelog partition) from the *current
    event*, a context variable that Faust's stream sets as it hands an event over, not in the agent
    body that processes a batch. Without this, a batch stage would write rows under whichever event
    happened to be current, and a restarted worker would recover them into the wrong partition.
    """

    __slots__ = ("_event", "_token")

    def __init__(self, event: EventT[bytes]) -> None:
        self._event = event

    def __enter__(self) -> None:
        self._token = _current_event.set(weakref.ref(self._event))

    def __exit__(self, *exc_info: object) -> None:
        _current_event.reset(self._token)
