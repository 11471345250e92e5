"""A key's messages in a keyed topic, without reading the others: only the key's own partition.

Every record-keyed topic is partitioned by Kafka's default partitioner (murmur2 of the key, as the
Java client and aiokafka compute it), so one partition holds all of a record's messages.
"""

from __future__ import annotations

from collections.abc import Container

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.partitioner import murmur2

from pipeline.kafka.clients import groupless_consumer, read_to_end
from pipeline.kafka.topic_admin import require_topics


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key``."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


async def messages_with_key(
    bootstrap: str, topic: str, partitions: int, key: bytes
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` with ``key`` now, oldest first (tombstones included)."""
    return await messages_with_keys(bootstrap, topic, partitions, key, {key})


async def messages_with_keys(
    bootstrap: str, topic: str, partitions: int, partition_key: bytes, keys: Container[bytes]
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` with one of ``keys`` in ``partition_key``'s partition now, oldest
    first (tombstones included): the rows a table keeps for one record under keys of their own."""
    await require_topics(bootstrap, topic)
    async with groupless_consumer(bootstrap, "contactsync-lookup") as consumer:
        partition = TopicPartition(topic, key_partition(partition_key, partitions))
        return [message async for message in read_to_end(consumer, [partition]) if message.key in keys]
