"""Publishing generated CDC events to Kafka, keyed and in order, for the CLI, the demo and tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from itertools import islice

from aiokafka import AIOKafkaProducer

from pipeline.cdc_generator import GeneratedEvent

CHUNK = 2000  # messages handed to the producer before waiting for their acknowledgements
CHUNKS_PER_SECOND = 10  # with a rate: how finely sending is paced


async def publish(events: Iterable[GeneratedEvent], bootstrap: str, topic: str, *, rate: float | None = None) -> int:
    """Send every event (acks=all, idempotent, so one key's messages stay in order); return how many.

    With ``rate`` (messages per second), sending is paced chunk by chunk against the start time.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be above 0 messages per second, got {rate}")
    size = CHUNK if rate is None else max(1, min(CHUNK, int(rate / CHUNKS_PER_SECOND)))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    try:
        await producer.start()
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0
        pending = iter(events)
        while chunk := list(islice(pending, size)):
            deliveries = [await producer.send(topic, event.value, key=event.key) for event in chunk]
            await asyncio.gather(*deliveries)
            sent += len(chunk)
            if rate is not None:
                await asyncio.sleep(max(0.0, started + sent / rate - loop.time()))
        return sent
    finally:
        await producer.stop()
