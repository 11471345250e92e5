"""``GET /metrics`` (Prometheus), and the agent that counts delivery outcomes for it.

The counting agent reads ``contacts.outcomes`` beside the status stage, in batches; it decodes
leniently and cannot raise, so it never holds back the topic's commits.
"""

from __future__ import annotations

from typing import cast

from aiokafka import TopicPartition
from faust import Stream
from faust.types import StreamT
from faust.web import Request, Response, View

from pipeline.app import app, lanes, settings, topics
from pipeline.kafka_clients import groupless_consumer
from pipeline.metrics import CONTENT_TYPE, MetricsSnapshot, OutcomeCounts, render_metrics
from pipeline.web.lag import sampler

outcome_counts = OutcomeCounts()


@app.agent(topics.outcomes, name="metrics-outcomes")
async def count_outcomes(stream: StreamT[bytes]) -> None:
    batches = cast(Stream[bytes], stream).take_events(settings.batch_max, within=settings.batch_within_s)
    async for events in batches:  # (StreamT does not declare take_events)
        outcome_counts.count(event.message.value for event in events)


async def dead_letters_written() -> int:
    """The DLQ's end offsets added up: every message ever written to it."""
    partitions = [TopicPartition(topics.catalog.dlq, p) for p in range(topics.catalog.partitions)]
    async with groupless_consumer(settings.bootstrap_servers, "contactsync-metrics") as consumer:
        consumer.assign(partitions)
        consumer.pause(*partitions)
        return sum((await consumer.end_offsets(partitions)).values())


@app.page("/metrics")
async def metrics(view: View, request: Request) -> Response:
    snapshot = MetricsSnapshot(
        lag=sampler.latest, topic_prefix=topics.catalog.prefix, dead_letters=await dead_letters_written(),
        outcomes=dict(outcome_counts.by_provider_state), lanes=lanes,
    )
    return view.bytes(render_metrics(snapshot), headers={"Content-Type": CONTENT_TYPE})
