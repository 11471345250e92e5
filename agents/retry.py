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

from pipeline.app import app, settings, topics
from pipeline.kafka.producing import Outgoing, produce_all
from pipeline.kafka.stage_loop import run_stage
from schemas.headers import from_headers
from schemas.retry import RetryState

STAGE = "retry"


def forward(event: EventT, topic: str) -> Outgoing:
    message = event.message
    return Outgoing(topic, message.key, message.value, list(message.headers or []))


async def wait_until(epoch_s: float) -> bool:
    """Sleep until ``epoch_s``; False as soon as the worker starts to rebalance or stop."""
    while (left := epoch_s - time.time()) > 0:
        if app.rebalancing or app.should_stop:
            return False
        await asyncio.sleep(min(left, 0.5))
    return True


def retry_agent(provider: str, tier: str) -> None:
    dispatch_topic = topics.catalog.dispatch(provider)

    async def forward_when_due(events: Sequence[EventT]) -> list[Outgoing]:
        """Forward events in order, waiting for each one's due time; returns what is left to send.

        A rebalance or shutdown cuts the wait short (Faust waits for every event a stream holds
        before it lets partitions go): the events not yet due go back to the end of their tier.
        """
        due: list[Outgoing] = []
        for index, event in enumerate(events):
            not_before_s = from_headers(RetryState, event.message.headers).not_before_ms / 1000
            if not_before_s > time.time():
                await produce_all(app, due)  # what is due now goes out before we wait
                due = []
                if not await wait_until(not_before_s):
                    return [forward(later, later.message.topic) for later in events[index:]]
            due.append(forward(event, dispatch_topic))
        return due

    async def retry(stream: StreamT) -> None:
        await run_stage(
            app, stream, f"{STAGE}-{provider}-{tier}", forward_when_due,
            batch_max=settings.batch_max, within_s=settings.batch_within_s,
        )

    app.agent(topics.retry[provider][tier], name=f"{STAGE}-{provider}-{tier}")(retry)


for provider_name, tiers in topics.retry.items():
    for tier_name in tiers:
        retry_agent(provider_name, tier_name)
