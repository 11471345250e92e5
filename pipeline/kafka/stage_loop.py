"""The loop every stage runs: take a batch, handle it, produce the outputs, then acknowledge.

One event that cannot be handled (undecodable, invalid, unmappable) is dead-lettered and the batch
goes on. Anything else is a fault of the worker, not of the event: it stops the worker without
committing (see ``producing.fail_stop``), so the batch is read again after the restart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import faust
import structlog
from faust.types import EventT, StreamT
from pydantic import ValidationError

from pipeline.kafka.dead_letters import dead_letter
from pipeline.errors import ContactSyncError, invalid_event
from pipeline.kafka.producing import Outgoing, fail_stop, produce_all
from pipeline.kafka.table_rows import remember_changelog_offsets
from pipeline.kafka.tables import rows_of

log = structlog.get_logger(__name__)

T = TypeVar("T")
BatchHandler = Callable[[Sequence[EventT]], Awaitable[list[Outgoing]]]


async def run_stage(
    app: faust.App,
    stream: StreamT,
    stage: str,
    handle: BatchHandler,
    *,
    batch_max: int,
    within_s: float,
) -> None:
    async for events in stream.take_events(batch_max, within=within_s):
        try:
            started = time.perf_counter()
            outgoing = await handle(events)
            remember_changelog_offsets(app, outgoing, await produce_all(app, outgoing))
            log.info(
                "batch",
                stage=stage,
                events=len(events),
                out=dict(Counter(message.topic for message in outgoing)),
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
        except Exception as exc:  # noqa: BLE001  (a fault of the worker: stop, commit nothing)
            fail_stop(stage, exc)


def decode_each(
    events: Sequence[EventT], stage: str, decode: Callable[[EventT], T], dlq_topic: str
) -> tuple[list[T], list[Outgoing]]:
    """``decode`` every event (inside its own table partition); dead-letter those that fail."""
    decoded: list[T] = []
    dead: list[Outgoing] = []
    for event in events:
        try:
            with rows_of(event):
                decoded.append(decode(event))
        except (ContactSyncError, ValidationError) as error:
            exc = invalid_event(error) if isinstance(error, ValidationError) else error
            log.warning("dead-lettered", stage=stage, error_class=type(exc).__name__, error=str(exc),
                        offset=event.message.offset, partition=event.message.partition)
            dead.append(dead_letter(dlq_topic, event, stage, exc))
    return decoded, dead


def per_event(stage: str, dlq_topic: str, handle: Callable[[EventT], list[Outgoing]]) -> BatchHandler:
    """A batch handler that applies ``handle`` to each event on its own."""

    async def handle_batch(events: Sequence[EventT]) -> list[Outgoing]:
        results, dead = decode_each(events, stage, handle, dlq_topic)
        return [message for messages in results for message in messages] + dead

    return handle_batch
