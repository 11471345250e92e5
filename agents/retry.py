"""Retry tiers, ``contacts.retry.<provider>.<delay>`` → ``contacts.dispatch.<provider>``.

A tier holds failed deliveries for one fixed delay. Its agent forwards each one back to the
provider's dispatch topic, byte-identical with its retry headers, once it is due and never before.
The dispatcher's version guard then skips it if a newer version was delivered meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from faust.types import EventT, StreamT

from pipeline.app import app, context
from pipeline.kafka.messages import headers_of
from pipeline.kafka.producing import Outgoing, produce_all, request_limit, require_fit
from pipeline.kafka.stage_loop import decode_each, run_stage
from schemas.headers import from_headers
from schemas.retry import RetryState

STAGE = "retry"


def forward(event: EventT[bytes], topic: str) -> Outgoing:
    message = event.message
    return Outgoing(topic, message.key, message.value, headers_of(event))


async def wait_until(epoch_s: float) -> bool:
    """Sleep until ``epoch_s``; False as soon as the worker starts to rebalance or stop."""
    while (left := epoch_s - time.time()) > 0:
        if app.rebalancing or app.should_stop:
            return False
        await asyncio.sleep(min(left, 0.5))
    return True


def retry_agent(provider: str, tier: str) -> None:
    dispatch_topic = context.topics.catalog.dispatch(provider)
    stage = f"{STAGE}-{provider}-{tier}"

    def due_forward(event: EventT[bytes]) -> tuple[float, EventT[bytes], Outgoing]:
        """When ``event`` is due (epoch seconds), and its forward (its retry headers must hold)."""
        outgoing = forward(event, dispatch_topic)
        require_fit([outgoing], request_limit(event.app))
        return from_headers(RetryState, headers_of(event)).not_before_ms / 1000, event, outgoing

    async def forward_when_due(events: Sequence[EventT[bytes]]) -> list[Outgoing]:
        """Forward events in order, waiting for each one's due time; returns what is left to send.

        A rebalance or shutdown cuts the wait short (Faust waits for every event a stream holds
        before it lets partitions go): the events not yet due go back to the end of their tier.
        """
        waiting, dead = decode_each(events, stage, due_forward, context.topics.catalog.dlq)
        due: list[Outgoing] = dead
        for index, (not_before_s, _, outgoing) in enumerate(waiting):
            if not_before_s > time.time():
                await produce_all(app, due)  # what is due now goes out before we wait
                due = []
                if not await wait_until(not_before_s):
                    return [forward(later, later.message.topic) for _, later, _ in waiting[index:]]
            due.append(outgoing)
        return due

    async def retry(stream: StreamT[bytes]) -> None:
        await run_stage(
            app, stream, stage, forward_when_due,
            faults=context.faults, batch_max=context.settings.batch_max, within_s=context.settings.batch_within_s,
        )

    app.agent(context.topics.retry[provider][tier], name=stage)(retry)


for provider_name, tiers in context.topics.retry.items():
    for tier_name in tiers:
        retry_agent(provider_name, tier_name)
