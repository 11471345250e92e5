"""Reading the broker for the benchmarks: end offsets, a group's lag, first and last timestamps."""

from __future__ import annotations

from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def end_offsets(bootstrap: str, topics: Collection[str], partitions: int) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(
            [TopicPartition(topic, partition) for topic in topics for partition in range(partitions)]
        )
        return ends
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topics: Collection[str], partitions: int) -> int:
    """Messages of ``topics`` (``partitions`` each) the group has not committed yet.

    Committed offsets are read before end offsets: when they are equal, everything a stage produced
    before committing its input is counted in the next topic's end offset.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    ends = await end_offsets(bootstrap, topics, partitions)
    done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return sum(end - done.get(tp, 0) for tp, end in ends.items())


async def edge_timestamps(bootstrap: str, topic: str, partitions: int) -> tuple[int, int]:
    """The earliest and the latest message timestamp (ms) of ``topic``: first and last of each partition."""
    ends = await end_offsets(bootstrap, [topic], partitions)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        filled = [tp for tp, end in ends.items() if end > 0]
        consumer.assign(filled)
        stamps: list[int] = []
        for tp in filled:
            for offset in {0, ends[tp] - 1}:
                consumer.seek(tp, offset)
                record = await consumer.getone(tp)
                stamps.append(record.timestamp)
        return min(stamps), max(stamps)
    finally:
        await consumer.stop()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()
