"""Recovery's seek to the commits in one request (``pipeline.kafka.transport.seek_all_to_committed``)
does what aiokafka's own ``seek_to_committed`` does, one request per partition, on a real broker:
the same commits, None where there is none, and each partition read from its commit."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from pipeline.kafka.transport import seek_all_to_committed

pytestmark = pytest.mark.kafka

PARTITIONS = 4
COMMITS = {0: 3, 1: 0, 2: 7}  # partition 3: never committed


async def test_one_request_seeks_every_partition_as_aiokafka_does(kafka_bootstrap: str) -> None:
    topic = f"seek-committed-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"
    partitions = [TopicPartition(topic, n) for n in range(PARTITIONS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
        await producer.start()
        for tp in partitions:
            for n in range(10):
                await producer.send(topic, f"{tp.partition}-{n}".encode(), partition=tp.partition)
        await producer.flush()
        committer = _consumer(kafka_bootstrap, group)
        await committer.start()
        try:
            committer.assign(partitions)
            await committer.commit({partitions[n]: OffsetAndMetadata(offset, "") for n, offset in COMMITS.items()})
        finally:
            await committer.stop()

        ours = await _seek_and_read(kafka_bootstrap, group, partitions, one_request=True)
        theirs = await _seek_and_read(kafka_bootstrap, group, partitions, one_request=False)
    finally:
        await producer.stop()
        await admin.close()

    assert ours == theirs
    committed, first_read = ours
    assert committed == {partitions[0]: 3, partitions[1]: 0, partitions[2]: 7, partitions[3]: None}
    assert first_read == {partitions[0]: 3, partitions[1]: 0, partitions[2]: 7, partitions[3]: 0}


def _consumer(bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest")


async def _seek_and_read(
    bootstrap: str, group: str, partitions: list[TopicPartition], *, one_request: bool
) -> tuple[dict[TopicPartition, int | None], dict[TopicPartition, int]]:
    """The commits the seek answers, and the offset each partition's first fetched record has."""
    consumer = _consumer(bootstrap, group)
    await consumer.start()
    try:
        consumer.assign(partitions)
        committed = await (seek_all_to_committed(consumer) if one_request else consumer.seek_to_committed())
        first_read: dict[TopicPartition, int] = {}
        for _ in range(10):  # each fetch waits up to 5 s for records; every partition has some
            if len(first_read) == len(partitions):
                break
            for tp, records in (await consumer.getmany(timeout_ms=5000)).items():
                first_read.setdefault(tp, records[0].offset)
        return dict(committed), first_read
    finally:
        await consumer.stop()
