"""Keyed messages on a multi-partition topic keep per-key order: the basis of invariant 3."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline.kafka.topics import TopicCatalog

pytestmark = pytest.mark.kafka

_KEYS = [f"contact-{n}" for n in range(20)]
_PER_KEY = 50


async def test_messages_stay_in_per_key_order(kafka_bootstrap: str, catalog: TopicCatalog) -> None:
    """Messages produced for many keys are consumed, from several partitions, in each key's produce order."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for seq in range(_PER_KEY):  # interleave the keys, as concurrent changes would be
            for key in _KEYS:
                await producer.send(catalog.cdc, key=key.encode(), value=str(seq).encode())
        await producer.flush()
    finally:
        await producer.stop()

    seen: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    consumer = AIOKafkaConsumer(
        catalog.cdc, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while sum(map(len, seen.values())) < len(_KEYS) * _PER_KEY:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        assert record.key is not None and record.value is not None
                        seen[record.key.decode()].append(int(record.value))
                        partitions[record.key.decode()].add(record.partition)
    finally:
        await consumer.stop()

    assert {key: seen[key] for key in _KEYS} == {key: list(range(_PER_KEY)) for key in _KEYS}
    assert all(len(used) == 1 for used in partitions.values())  # one key, one partition
    assert len(set().union(*partitions.values())) > 1  # and the keys do spread out
