"""Table rows of a batch stage: in the store at once, in the changelog with the batch, and where
recovery resumes reading the changelog."""

from __future__ import annotations

from pathlib import Path

from faust.types import TP, RecordMetadata

from pipeline.kafka.producing import Outgoing
from pipeline.kafka.table_rows import delete_row, get_row, remember_changelog_offsets, set_row
from tests.unit.kafka.doubles import Event, MemoryTable, Message
from tests.unit.kafka.test_rocksdb_store import worker_tables

CHANGELOG = "t.contactsync-delivered-version.hubspot-changelog"


def event(partition: int) -> Event:
    return Event(Message("t.contacts.dispatch.hubspot", partition, offset=41, key=b"r1", value=b"{}"))


def test_set_row_stores_the_row_at_once_and_returns_its_changelog_message() -> None:
    """The rest of the batch reads the row at once; its changelog message goes to the event's partition."""
    table = MemoryTable(CHANGELOG)

    message = set_row(table, event(partition=4), b"r1", b"row-1")

    assert table.get(b"r1") == b"row-1"
    assert table.data.written_in[b"r1"] == 4  # written while the event was Faust's current event
    assert message == Outgoing(CHANGELOG, b"r1", b"row-1", partition=4)


def test_delete_row_removes_the_row_and_returns_a_tombstone() -> None:
    """A deleted row is gone from the store at once; its changelog message is a tombstone."""
    table = MemoryTable(CHANGELOG)
    set_row(table, event(partition=2), b"r1", b"row-1")

    message = delete_row(table, event(partition=2), b"r1")

    assert table.get(b"r1") is None
    assert table.data.written_in[b"r1"] == 2
    assert message == Outgoing(CHANGELOG, b"r1", None, partition=2)


class TablesApp:
    def __init__(self, *tables: MemoryTable) -> None:
        self.tables = {table.changelog_topic.get_topic_name(): table for table in tables}


def acked(message: Outgoing, offset: int) -> RecordMetadata:
    partition = 0 if message.partition is None else message.partition
    return RecordMetadata(message.topic, partition, TP(message.topic, partition), offset, 0, 0)


def test_remember_changelog_offsets_keeps_the_newest_offset_per_changelog_partition() -> None:
    """Per changelog partition the newest offset of the batch is recorded once, whatever order the
    acks are listed in; messages to other topics are not changelogs and leave no offset."""
    guard, status = MemoryTable(CHANGELOG), MemoryTable("t.contactsync-record-status-changelog")
    outcome = Outgoing("t.contacts.outcomes", b"r1", b"{}", partition=0)
    sent_and_offsets = [
        (Outgoing(CHANGELOG, b"r1", b"v", partition=0), 12),
        (Outgoing(CHANGELOG, b"r2", b"v", partition=0), 10),
        (outcome, 99),
        (Outgoing(CHANGELOG, b"r3", b"v", partition=1), 3),
        (Outgoing(CHANGELOG, b"r1", None, partition=0), 11),
        (Outgoing(status.changelog_topic.get_topic_name(), b"r1", b"s", partition=0), 7),
    ]
    sent = [message for message, _ in sent_and_offsets]
    acks = [acked(message, offset) for message, offset in sent_and_offsets]

    remember_changelog_offsets(TablesApp(guard, status), sent, acks)

    assert guard.data.persisted == {TP(CHANGELOG, 0): 12, TP(CHANGELOG, 1): 3}
    assert status.data.persisted == {TP("t.contactsync-record-status-changelog", 0): 7}
    assert (guard.data.persist_calls, status.data.persist_calls) == (2, 1)


def test_rows_of_a_rocksdb_table_live_in_the_database_of_their_events_partition(tmp_path: Path) -> None:
    """A row is written to and read from the RocksDB database of its event's partition (the one Faust
    recovers from that partition's changelog), and Faust finds it outside any event, as the web views
    read it."""
    table = worker_tables(tmp_path).status

    set_row(table, event(partition=4), b"r1", b"row-1")

    assert get_row(table, event(partition=4), b"r1") == b"row-1"
    assert get_row(table, event(partition=4), b"r2") is None
    assert table.data._db_for_partition(4).get(b"r1") == b"row-1"
    assert table.data._db_for_partition(3).get(b"r1") is None
    assert table.get(b"r1") == b"row-1"
    delete_row(table, event(partition=4), b"r1")
    assert get_row(table, event(partition=4), b"r1") is None
