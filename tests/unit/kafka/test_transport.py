"""The group's commit never passes a message that no stream handled."""

from __future__ import annotations

import faust
from aiokafka import AIOKafkaConsumer
from faust.types import TP, Message

from pipeline.kafka.transport import FETCH_MAX_BYTES, STUCK_AFTER_S

TOPIC = "contacts.cdc"
PARTITION = TP(TOPIC, 0)


def consumer_of(tmp_path, committed: int | None = 80):  # type: ignore[no-untyped-def]
    app = faust.App("ack-test", broker="contactsync://127.0.0.1:9", datadir=str(tmp_path))
    app.topics.acking_topics.add(TOPIC)
    consumer = app.consumer
    consumer._committed_offset[PARTITION] = committed
    return consumer


def message(offset: int, *, handled: bool = True) -> Message:
    """A fetched message; ``handled``: a stream tracked it before its agent saw it."""
    fetched = Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    fetched.tracked = handled
    return fetched


def test_a_dropped_message_holds_the_commit_until_it_is_handled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = consumer_of(tmp_path)
    assert consumer.ack(message(80, handled=False)) is False  # dropped by a stream after a rebalance
    for offset in range(81, 86):
        assert consumer.ack(message(offset))
    assert consumer._new_offset(PARTITION) is None  # Faust alone would commit 86, past offset 80

    assert consumer.ack(message(80))  # fetched again and handled
    assert consumer._new_offset(PARTITION) == 86


def test_handled_messages_commit_as_before(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = consumer_of(tmp_path)
    for offset in range(80, 83):
        consumer.ack(message(offset))
    assert consumer._new_offset(PARTITION) == 83


def test_a_partition_never_committed_commits_from_its_log_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Faust would commit from the first acknowledged offset, past everything before it."""
    consumer = consumer_of(tmp_path, committed=None)
    for offset in range(145, 150):
        consumer.ack(message(offset))
    assert consumer._new_offset(PARTITION) is None  # the log start is not known yet
    consumer._log_start[PARTITION] = 0
    assert consumer._new_offset(PARTITION) is None  # 0..144 were never handled
    for offset in range(145):
        consumer.ack(message(offset))
    assert consumer._new_offset(PARTITION) == 150


async def test_skipped_offsets_count_only_once_the_broker_shows_them_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = consumer_of(tmp_path)
    await consumer._add_gap(PARTITION, 81, 84)  # the fetch jumped from 80 to 85
    for offset in (80, 85):
        consumer.ack(message(offset))
    assert consumer._new_offset(PARTITION) == 81  # Faust would commit 86
    consumer._committed_offset[PARTITION] = 81  # as after that commit
    consumer._gap[PARTITION].addi(81, 85)  # what _unstick does when the broker has no 81..84
    assert consumer._new_offset(PARTITION) == 86


def stuck_check_of(tmp_path):  # type: ignore[no-untyped-def]
    """A consumer assigned PARTITION, committed at 80, with messages up to 89 in the log."""
    consumer = consumer_of(tmp_path)
    consumer.assignment = lambda: {PARTITION}
    consumer.highwater = lambda tp: 90
    return consumer


def test_a_message_dropped_in_the_worker_is_read_again_once_it_held_the_commit_long(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = stuck_check_of(tmp_path)
    for offset in range(81, 86):  # 80 was delivered but no stream tracked it
        consumer.ack(message(offset))
    assert consumer._stuck_for_long(100.0) == []
    assert consumer._stuck_for_long(100.0 + STUCK_AFTER_S) == [PARTITION]


def test_handled_messages_that_wait_for_the_next_commit_are_not_read_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = stuck_check_of(tmp_path)
    for offset in range(80, 90):
        consumer.ack(message(offset))
    assert consumer._stuck_for_long(100.0) == []
    assert consumer._stuck_for_long(100.0 + STUCK_AFTER_S) == []


def test_a_commit_that_moved_starts_the_wait_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = stuck_check_of(tmp_path)
    consumer.ack(message(81))
    assert consumer._stuck_for_long(100.0) == []  # held at 80
    consumer._committed_offset[PARTITION] = 82  # 80 came through after all; now 82 holds it
    consumer.ack(message(83))
    assert consumer._stuck_for_long(100.0 + STUCK_AFTER_S) == []
    assert consumer._stuck_for_long(100.0 + 2 * STUCK_AFTER_S) == [PARTITION]


def test_a_partition_whose_high_watermark_is_unknown_is_not_taken_for_stuck(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After a broker restart aiokafka knows no high watermark until a fetch answers: the check waits
    (it crashed the consumer comparing None with the commit)."""
    consumer = stuck_check_of(tmp_path)
    consumer.highwater = lambda tp: None
    consumer.ack(message(81))
    assert consumer._stuck_for_long(100.0) == []
    assert consumer._stuck_for_long(100.0 + STUCK_AFTER_S) == []


async def test_a_read_the_broker_does_not_answer_counts_no_offset_missing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A stuck partition whose read of the log brings nothing in time (a loaded broker) is asked
    again the next round: nothing is counted missing, though the high watermark lies past the
    commit, so the commit never passes records that are there. Where the log goes on past the
    commit (a transaction's marker, deleted records), the offsets up to there are counted missing."""
    consumer = consumer_of(tmp_path, committed=1)
    consumer.highwater = lambda tp: 50
    goes_on: list[int | None] = [None]

    async def read(reader: object, partition: object, offset: int) -> int | None:
        return goes_on[0]

    async def no_reader() -> None:
        return None

    monkeypatch.setattr("pipeline.kafka.transport.next_offset_from", read)
    consumer._reader = no_reader
    await consumer._unstick(PARTITION)
    assert not consumer._gap[PARTITION]

    goes_on[0] = 4
    await consumer._unstick(PARTITION)
    assert [(gap.begin, gap.end) for gap in consumer._gap[PARTITION]] == [(1, 4)]


async def test_a_fetch_response_is_capped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Faust builds aiokafka's consumer without ``fetch_max_bytes`` (50 MiB by default); ours caps it
    where aiokafka keeps it until it starts its fetcher."""
    consumer = consumer_of(tmp_path)
    client = consumer._new_consumer_thread()._create_worker_consumer(consumer.transport)
    assert client._fetch_max_bytes == FETCH_MAX_BYTES == 1024 * 1024
    assert AIOKafkaConsumer(fetch_max_bytes=123)._fetch_max_bytes == 123  # the attribute aiokafka reads
