"""Generated CDC events published to the real broker: keyed, complete, in per-key order, paced when asked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.dev.cdc_generator import GeneratedEvent, generate_events
from pipeline.dev.cdc_publisher import publish
from pipeline.kafka.topics import TopicCatalog

pytestmark = pytest.mark.kafka

_READ_TIMEOUT_S = 30.0


async def _read(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    received: list[tuple[bytes | None, bytes | None]] = []
    try:
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while len(received) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received += [(record.key, record.value) for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    return received


def _by_key(messages: list[tuple[bytes | None, bytes | None]]) -> dict[bytes | None, list[bytes | None]]:
    grouped: dict[bytes | None, list[bytes | None]] = defaultdict(list)
    for key, value in messages:
        grouped[key].append(value)
    return grouped


async def test_published_events_come_back_keyed_and_in_per_key_order(
    kafka_bootstrap: str, catalog: TopicCatalog
) -> None:
    """200 generated messages (tombstones and invalid ones included) are all read back, each key's in produce order."""
    events: list[GeneratedEvent] = list(generate_events(200, records=20, seed=11, invalid_ratio=0.1))
    assert await publish(events, kafka_bootstrap, catalog.cdc) == 200

    received = _by_key(await _read(kafka_bootstrap, catalog.cdc, 200))
    sent = _by_key([(event.key, event.value) for event in events])
    keyless = received.pop(None, [])  # missing-id events: no key, so no order across partitions
    assert sorted(keyless, key=repr) == sorted(sent.pop(None, []), key=repr)
    assert received == sent


async def test_publish_paces_to_the_rate(kafka_bootstrap: str, catalog: TopicCatalog) -> None:
    """At 100 messages per second, 50 messages take about half a second."""
    started = asyncio.get_running_loop().time()
    assert await publish(generate_events(50, seed=1), kafka_bootstrap, catalog.cdc, rate=100) == 50
    assert asyncio.get_running_loop().time() - started >= 0.45


def _produce(bootstrap: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CONTACTSYNC_", "KAFKA_"))}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CONTACTSYNC_KAFKA__TOPIC_PREFIX": prefix}
    command = [str(Path(sys.executable).parent / "contactsync"), "produce", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


async def test_produce_command_sends_to_the_cdc_topic(kafka_bootstrap: str, catalog: TopicCatalog) -> None:
    """``contactsync produce`` sends the asked count to the prefixed CDC topic and prints one summary line."""
    arguments = ("--count", "120", "--plain", "--seed", "3")
    done = await asyncio.to_thread(_produce, kafka_bootstrap, catalog.prefix, *arguments)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"sent 120 messages to {catalog.cdc} in ") and done.stdout.count("\n") == 1
    received = await _read(kafka_bootstrap, catalog.cdc, 120)
    assert len(received) == 120


async def test_produce_to_a_missing_topic_is_one_line(kafka_bootstrap: str, topic_prefix: str) -> None:
    """Without the topic, produce fails fast with one line naming the topic and the fix."""
    done = await asyncio.to_thread(_produce, kafka_bootstrap, topic_prefix, "--count", "5")
    assert done.returncode == 2
    topic = f"{topic_prefix}contacts.cdc"
    assert done.stderr.splitlines() == [
        f"contactsync: topic {topic} does not exist at {kafka_bootstrap}: run `contactsync topics apply`"
    ]
