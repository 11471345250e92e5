"""Faust itself calls the consumer hooks that pipeline.kafka.transport overrides.

The unit tests of the transport call the overrides directly; they would still pass if a Faust upgrade
stopped calling them. Here a real Faust app on the real broker consumes through the ``contactsync://``
transport, and the test counts what Faust called and checks the offset it committed.

The agent takes batches with ``pipeline.kafka.batches`` as the stages do: acknowledging those goes through
``Consumer.ack``. (Faust's Cython stream iterator, used by ``async for value in stream``, inlines
``Consumer.ack`` and would not call the override; no stage iterates a stream per event.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.kafka.batches import batches
from pipeline.kafka.clients import admin_client
from pipeline.kafka.faust_internals import CONSUMER_HOOKS
from pipeline.kafka.topics import TopicCatalog
from pipeline.kafka.transport import Consumer

pytestmark = pytest.mark.kafka

MESSAGES = 30


def _counting(name: str, calls: Counter[str]) -> Callable[..., Any]:
    original = getattr(Consumer, name)
    if asyncio.iscoroutinefunction(original):
        async def counted_async(self: Consumer, *args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return await original(self, *args, **kwargs)
        return counted_async

    def counted(self: Consumer, *args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return original(self, *args, **kwargs)
    return counted


async def test_faust_calls_our_consumer_hooks_and_commits_through_them(
    kafka_bootstrap: str, catalog: TopicCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()
    for name in ("ack", "_new_offset"):
        monkeypatch.setattr(Consumer, name, _counting(name, calls))
    app_id = f"hooks-{uuid.uuid4().hex[:8]}"
    app = faust.App(
        app_id, broker=f"contactsync://{kafka_bootstrap}", store="memory://", datadir=str(tmp_path),
        web_enabled=False, consumer_auto_offset_reset="earliest", broker_commit_interval=0.2,
        topic_disable_leader=True,
    )
    topic = app.topic(catalog.cdc, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=catalog.partitions)
    seen: list[bytes] = []

    @app.agent(topic)
    async def consume(stream: Any) -> None:
        async for events in batches(stream, 10, 0.1):  # as every stage takes its input
            seen.extend(event.value for event in events)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for n in range(MESSAGES):
            await producer.send(catalog.cdc, key=b"k", value=str(n).encode())
        await producer.flush()
    finally:
        await producer.stop()

    await app.start()
    try:
        async with asyncio.timeout(60):
            while len(seen) < MESSAGES or await _committed(kafka_bootstrap, app_id, catalog) < MESSAGES:
                await asyncio.sleep(0.2)
    finally:
        await app.stop()

    assert isinstance(app.consumer, Consumer)
    assert calls["ack"] >= MESSAGES
    assert calls["_new_offset"] > 0
    assert set(calls) <= set(CONSUMER_HOOKS)


async def _committed(bootstrap: str, group: str, catalog: TopicCatalog) -> int:
    async with admin_client(bootstrap, "hooks-test") as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == catalog.cdc and meta.offset > 0)


async def test_a_partition_read_again_is_delivered_again_from_its_commit(
    kafka_bootstrap: str, catalog: TopicCatalog, tmp_path: Path
) -> None:
    """What the stuck-partition check does to a partition whose commit is held: the consumer seeks it
    back to the commit, and every message from there reaches the stage again while the fetch goes
    on. (It seeks through the consumer's thread, since aiokafka's fetcher is not thread-safe; the
    race a seek from the wrong thread loses is too rare to force here.)"""
    app = faust.App(
        f"reread-{uuid.uuid4().hex[:8]}", broker=f"contactsync://{kafka_bootstrap}", store="memory://",
        datadir=str(tmp_path), web_enabled=False, consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.2, topic_disable_leader=True,
    )
    topic = app.topic(catalog.cdc, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=catalog.partitions)
    seen: Counter[bytes] = Counter()

    @app.agent(topic)
    async def consume(stream: Any) -> None:
        async for events in batches(stream, 10, 0.1):
            seen.update(event.value for event in events)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    await app.start()
    try:
        first = [await producer.send_and_wait(catalog.cdc, key=b"k", value=f"a{n}".encode()) for n in range(MESSAGES)]
        async with asyncio.timeout(60):
            while len(seen) < MESSAGES:
                await asyncio.sleep(0.1)
        consumer = app.consumer
        assert isinstance(consumer, Consumer)
        tp = next(iter({faust.types.TP(m.topic, m.partition) for m in first}))
        consumer._committed_offset[tp] = first[0].offset  # as if the commit were held at the first message
        await consumer._unstick(tp)
        for n in range(MESSAGES):  # the fetch keeps running beside the seek
            await producer.send_and_wait(catalog.cdc, key=b"k", value=f"b{n}".encode())
        async with asyncio.timeout(60):
            while sum(seen.values()) < 3 * MESSAGES:
                await asyncio.sleep(0.1)
    finally:
        await app.stop()
        await producer.stop()
    assert all(seen[f"a{n}".encode()] == 2 for n in range(MESSAGES)), seen
    assert all(seen[f"b{n}".encode()] == 1 for n in range(MESSAGES)), seen
