"""Where a partition's log goes on from an offset (``pipeline.kafka.transport.next_offset_from``), as
the stuck-partition check reads it on a real broker: a record is found where it is; the offsets a
transaction's marker takes or that were deleted are passed over; a read that brings nothing says so
rather than guess, so the commit never passes records that are there."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete

from pipeline.kafka.transport import log_reader, next_offset_from

pytestmark = pytest.mark.kafka


async def test_the_log_goes_on_at_records_past_markers_and_deleted_offsets_and_nothing_is_guessed(
    kafka_bootstrap: str,
) -> None:
    partition = TopicPartition(f"log-gaps-{uuid.uuid4().hex[:8]}", 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    transactional = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=partition.topic)
    reader = log_reader(kafka_bootstrap, "log-gaps-test")
    try:
        await admin.create_topics([NewTopic(partition.topic, num_partitions=1, replication_factor=1)])
        await plain.start()
        for n in range(10):  # offsets 0-9
            await plain.send_and_wait(partition.topic, f"{n}".encode(), partition=0)
        await transactional.start()
        async with transactional.transaction():  # offsets 10-11, its commit marker 12
            for n in (10, 11):
                await transactional.send(partition.topic, f"{n}".encode(), partition=0)
        await reader.start()
        # The coordinator writes the marker after the commit returns: the next record comes after it.
        while (await reader.end_offsets([partition]))[partition] < 13:
            await asyncio.sleep(0.1)
        await plain.send_and_wait(partition.topic, b"13", partition=0)  # offset 13, the end 14

        assert await next_offset_from(reader, partition, 3) == 3
        assert await next_offset_from(reader, partition, 12) == 13  # the marker is no record
        assert await next_offset_from(reader, partition, 14) is None  # nothing there yet: no guess

        await admin.delete_records({partition: RecordsToDelete(before_offset=6)})
        assert await next_offset_from(reader, partition, 2) == 6  # the log starts at 6 now
    finally:
        await reader.stop()
        await transactional.stop()
        await plain.stop()
        await admin.close()
