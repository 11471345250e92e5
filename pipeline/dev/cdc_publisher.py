"""Publishing generated CDC events to Kafka, keyed and in order, for the CLI, the demo and tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from itertools import islice

from aiokafka import AIOKafkaProducer

from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.kafka.pacing import Pace, chunk_size

CHUNK = 2000  # messages handed to the producer before waiting for their acknowledgements


async def publish(events: Iterable[GeneratedEvent], bootstrap: str, topic: str, *, rate: float | None = None) -> int:
    """Send every event (acks=all, idempotent, so one key's messages stay in order); return how many.

    With ``rate`` (messages per second), sending is paced chunk by chunk against the start time.
    """
    size = chunk_size(rate, CHUNK)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    try:
        await producer.start()
        pace, sent = Pace(rate), 0
        pending = iter(events)
        while chunk := list(islice(pending, size)):
            deliveries = [await producer.send(topic, event.value, key=event.key) for event in chunk]
            await asyncio.gather(*deliveries)
            sent += len(chunk)
            await pace.until(sent)
        return sent
    finally:
        await producer.stop()
