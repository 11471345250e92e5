"""Putting messages at known offsets and committing a group's offsets by hand, for the ops tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def fill_partitions(
    bootstrap: str, topic: str, counts: Mapping[int, int], headers: Sequence[tuple[str, bytes]] = (),
    first_timestamp_ms: int | None = None,
) -> None:
    """Send ``counts[p]`` small messages to partition ``p`` of ``topic``; with ``first_timestamp_ms``,
    message ``n`` of each partition has that timestamp plus ``n`` seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in counts.items():
            for n in range(count):
                timestamp_ms = None if first_timestamp_ms is None else first_timestamp_ms + n * 1000
                await producer.send(topic, f"m{n}".encode(), key=f"k{n}".encode(), partition=partition,
                                    headers=list(headers) or None, timestamp_ms=timestamp_ms)
        await producer.flush()
    finally:
        await producer.stop()


async def commit_offsets(bootstrap: str, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit ``offsets`` ((topic, partition) -> next offset to read) for ``group``, as a member would."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = {TopicPartition(topic, partition): offset for (topic, partition), offset in offsets.items()}
        consumer.assign(list(partitions))
        await consumer.commit(partitions)
    finally:
        await consumer.stop()
