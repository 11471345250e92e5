"""``GET /metrics`` (Prometheus); the stages that record outcomes count the ones it shows."""

from __future__ import annotations

from aiokafka import TopicPartition
from faust.web import Request, Response, View

from pipeline.app import app, context
from pipeline.kafka.clients import groupless_consumer
from pipeline.ops.metrics import CONTENT_TYPE, MetricsSnapshot, render_metrics
from pipeline.web.lag import sampler


async def dead_letters_written() -> int:
    """The DLQ's end offsets added up: every message ever written to it."""
    partitions = [TopicPartition(context.topics.catalog.dlq, p) for p in range(context.topics.catalog.partitions)]
    async with groupless_consumer(context.settings.bootstrap_servers, "contactsync-metrics") as consumer:
        consumer.assign(partitions)
        consumer.pause(*partitions)
        return sum((await consumer.end_offsets(partitions)).values())


@app.page("/metrics")
async def metrics(view: View, request: Request) -> Response:
    snapshot = MetricsSnapshot(
        lag=sampler.latest,
        topic_prefix=context.topics.catalog.prefix,
        dead_letters=await dead_letters_written(),
        outcomes=dict(context.outcome_counts.by_provider_state),
        lanes=context.lanes,
        worker_fault_letters=dict(context.faults.given_up),
        webhooks=context.webhook_counts,
    )
    return view.bytes(render_metrics(snapshot), headers={"Content-Type": CONTENT_TYPE})
