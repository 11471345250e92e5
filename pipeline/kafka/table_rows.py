"""Table rows written by a batch stage: into the store at once, into the changelog with the batch.

Faust's own ``table[key] = value`` sends one changelog message per write through its producer
buffer, one message at a time, and writes that message's offset into RocksDB when it is acked; the
stage must then flush the buffer (polling it message by message) before it may acknowledge its
batch. That was about a sixth of a worker's CPU. Here a row goes into the store at once (so the rest
of the batch reads it), and its changelog message comes back as an ``Outgoing`` that the stage
produces and awaits with its other outputs; once they are acked, ``remember_changelog_offsets``
records the newest changelog offset per partition, where recovery resumes reading the changelog.
With the RocksDB store a row is read and written in its partition's database directly: Faust's
store API finds the partition through its current-event variable and encodes the bytes again on
every access (together a tenth of a worker's CPU, with a second lookup on every read).

Every read and write of a row goes through here, and a failure of the store is a fault of the
worker (``WorkerFaultError``), never of the event being handled (see ``pipeline.kafka.stage_loop``).
A row whose changelog message the producer could not send is refused before it is stored.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import cast

import faust
import rocksdict
from faust.stores import rocksdb
from faust.types import TP, EventT, RecordMetadata

from pipeline.errors import WorkerFaultError
from pipeline.kafka.producing import Outgoing, request_limit, require_fit
from pipeline.kafka.tables import rows_of


def get_row(table: faust.Table[bytes, bytes], event: EventT[bytes], key: bytes) -> bytes | None:
    """The value under ``key`` in ``event``'s partition, if any."""
    with _store_of(table):
        database = _partition_database(table, event)
        if database is not None:
            value: bytes | None = database.get(key)
            return value
        with rows_of(event):
            return table.data.get(key)


def set_row(table: faust.Table[bytes, bytes], event: EventT[bytes], key: bytes, value: bytes) -> Outgoing:
    """Store ``value`` under ``key`` in ``event``'s partition; returns the changelog message
    (OutputTooLargeError, before storing anything, if the producer could not send it)."""
    changelog = _changelog(table, event, key, value)
    require_fit([changelog], request_limit(table.app))
    with _store_of(table):
        database = _partition_database(table, event)
        if database is not None:
            # (Faust's own writes also note the key's partition in a small cache, ``_key_index``; a read
            # outside any event, such as a web view's, looks in every partition's database without it)
            database.put(key, value)
        else:
            with rows_of(event):
                table.data[key] = value
    return changelog


def _partition_database(table: faust.Table[bytes, bytes], event: EventT[bytes]) -> rocksdict.Rdict | None:
    """The RocksDB database of ``event``'s partition, when ``table`` keeps its rows in RocksDB; None
    for another store (the in-memory one of tests), read through Faust."""
    store = table.data
    return cast(rocksdb.Store, store)._db_for_partition(event.message.partition) if _in_rocksdb(type(store)) else None


@functools.cache
def _in_rocksdb(store_type: type) -> bool:
    """Whether a store of ``store_type`` is Faust's RocksDB store (an ``isinstance`` of an abstract
    class, on every row, cost half a per cent of a worker's CPU)."""
    return issubclass(store_type, rocksdb.Store)


def delete_row(table: faust.Table[bytes, bytes], event: EventT[bytes], key: bytes) -> Outgoing:
    """Remove ``key`` (it must be there); returns the changelog tombstone."""
    with rows_of(event), _store_of(table):
        del table.data[key]
    return _changelog(table, event, key, None)


class _store_of:  # noqa: N801  (used as a function; a class is cheaper per row than @contextmanager)
    __slots__ = ("_table",)

    def __init__(self, table: faust.Table[bytes, bytes]) -> None:
        self._table = table

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, Exception):
            raise WorkerFaultError(f"table {self._table.name}: {type(exc).__name__}: {exc}") from exc


def _changelog(table: faust.Table[bytes, bytes], event: EventT[bytes], key: bytes, value: bytes | None) -> Outgoing:
    topic = table.changelog_topic.get_topic_name()
    return Outgoing(topic, key, value, partition=event.message.partition)


def remember_changelog_offsets(
    app: faust.App, sent: Sequence[Outgoing], acked: Sequence[RecordMetadata]
) -> None:
    """Record in each table's store the newest offset its changelog got from this batch."""
    tables = {table.changelog_topic.get_topic_name(): table for table in app.tables.values()}
    newest: dict[TP, int] = {}
    for message, metadata in zip(sent, acked, strict=True):
        if message.topic in tables:
            tp = TP(metadata.topic, metadata.partition)
            newest[tp] = max(newest.get(tp, -1), metadata.offset)
    for tp, offset in newest.items():
        tables[tp.topic].data.set_persisted_offset(tp, offset)
