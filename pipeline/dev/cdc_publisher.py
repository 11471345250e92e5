"""Publishing generated CDC events to Kafka, keyed and in order, for the CLI, the demo and tests."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.kafka.clients import acked_producer
from pipeline.kafka.pacing import Pace, chunk_size
from pipeline.kafka.producing import Outgoing
from pipeline.settings import KafkaSettings

CHUNK = 2000  # messages handed to the producer before waiting for their acknowledgements


async def publish(
    events: Iterable[GeneratedEvent], bootstrap: str, topic: str, *, rate: float | None = None,
    retry_deadline_s: float = KafkaSettings().retry_deadline_s,
) -> int:
    """Send every event (acks=all, idempotent, so one key's messages stay in order); return how many.

    With ``rate`` (messages per second), sending is paced chunk by chunk against the start time. A
    broker that stops acknowledging is waited for up to ``retry_deadline_s`` (``pipeline.kafka.patient_producer``).
    """
    size = chunk_size(rate, CHUNK)
    options = {"linger_ms": 5, "max_batch_size": 256 * 1024}
    async with acked_producer(bootstrap, "contactsync-produce", retry_deadline_s, **options) as producer:
        pace, sent = Pace(rate), 0
        pending = iter(events)
        while chunk := list(islice(pending, size)):
            await producer.send_all(Outgoing(topic, event.key, event.value) for event in chunk)
            sent += len(chunk)
            await pace.until(sent)
        return sent
