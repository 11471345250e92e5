"""Stage 4, ``contacts.dispatch.<provider>`` → the provider: one dispatcher agent per provider.

Each provider has its own agent, lane (rate limit share, throttle pause, breaker) and HTTP client,
so a slow, throttled or failing provider never holds up the others. While the lane is saturated
(or the batch was full: more is waiting in Kafka), the records that would make a short request wait
for the next batches to fill it, unacknowledged meanwhile; once they have waited the lane's
``linger_s`` (deletes: ``delete_linger_requests`` of the lane's requests) they go with the next
batch, an empty one if nothing else comes; at once when a rebalance or a stop begins. Settings
changed at run time reach the lane at once; the next batch is chunked by the new batch size and,
after any change, sent through a new client. (How many events a batch takes from Kafka stays as it
was at the start.)
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT, StreamT

from pipeline.app import app, context
from pipeline.delivery.dispatcher import Dispatcher
from pipeline.delivery.outcomes import OutcomeRecorder
from pipeline.delivery.rate_limit import ProviderLane
from pipeline.kafka.messages import headers_of, value_of
from pipeline.kafka.producing import Outgoing, produce_all
from pipeline.kafka.stage_loop import decode_each, run_stage
from pipeline.providers import Provider, build_lane_provider, dispatch_batch_max, request_grouping
from pipeline.stages.dispatch import Pending
from schemas.dispatch import DispatchRecord
from schemas.headers import from_headers
from schemas.retry import RetryState

STAGE = "dispatch"


def decode_pending(event: EventT[bytes]) -> Pending[EventT[bytes]]:
    return Pending(
        event=event,
        record=DispatchRecord.model_validate_json(value_of(event)),
        retry=from_headers(RetryState, headers_of(event)),
    )


def assigned_share(topic: str) -> float:
    """This worker's share of ``topic``'s partitions: its share of the provider's rate limit."""
    assigned = sum(1 for tp in app.consumer.assignment() if tp.topic == topic)
    return assigned / context.topics.catalog.partitions


def new_client(lane: ProviderLane) -> Provider:
    """The provider's adapter for the lane's settings as they are now, its requests admitted by the lane."""
    return build_lane_provider(lane.name, lane.settings, transport=lane.transport())


def dispatcher_agent(name: str) -> None:
    lane = context.lanes[name]
    topic = context.topics.catalog.dispatch(name)

    async def dispatch(stream: StreamT[bytes]) -> None:
        await context.runtime.caught_up.wait()  # the provider settings stored before this worker started
        dispatcher = Dispatcher(
            new_client(lane), lane, context.topics.catalog, context.tables.delivered_version[name],
            write_ahead=lambda rows: produce_all(app, rows),
            outcomes=OutcomeRecorder(
                context.topics.catalog.outcomes, context.tables.status, "dispatch", context.outcome_counts,
            ),
            request_of=request_grouping(name, lane.settings),
            flushing=lambda: not app.flow_control.is_active(),
        )
        built_for = lane.generation
        batch_max = dispatch_batch_max(name, lane.settings, context.settings.batch_max)

        async def handle(events: Sequence[EventT[bytes]]) -> list[Outgoing]:
            nonlocal built_for
            if built_for != lane.generation:  # reconfigured at run time: endpoint, timeout, connections
                await dispatcher.provider.aclose()
                dispatcher.provider, built_for = new_client(lane), lane.generation
            lane.set_share(assigned_share(topic))
            dispatcher.linger_s = lane.settings.linger_s
            dispatcher.delete_linger_s = lane.seconds_for(lane.settings.delete_linger_requests)
            pending, dead = decode_each(events, f"{STAGE}-{name}", decode_pending, context.topics.catalog.dlq)
            return dead + await dispatcher.dispatch(pending, more_waiting=len(events) >= batch_max)

        try:
            await run_stage(
                app, stream, f"{STAGE}-{name}", handle,
                faults=context.faults, batch_max=batch_max,
                within_s=context.settings.batch_within_s, holder=dispatcher,
            )
        finally:
            await dispatcher.provider.aclose()

    app.agent(context.topics.dispatch[name], name=f"{STAGE}-{name}")(dispatch)


for provider_name in context.lanes:
    dispatcher_agent(provider_name)
