"""The loop every stage runs: take a batch, handle it, produce the outputs, then acknowledge.

What is the event's fault and what is the worker's:

* Anything raised while one event is decoded, validated, transformed or mapped (``decode_each``,
  ``per_event``) is the event's fault, whatever its type (a RecursionError from deep JSON, a
  ValueError from a huge number, a serialisation error, an output larger than the producer sends):
  the event is dead-lettered with the error's class and message, and the batch goes on.
* Except what is marked as the worker's own: ``WorkerFaultError`` (the table store failed; every row
  read and write goes through ``pipeline.kafka.table_rows``, which marks it), ``MemoryError``, and what is
  not an ``Exception`` at all (cancellation, exit). So is whatever fails outside the handling of
  one event: producing the outputs, a stage's own batch code (the dispatcher, the status fold).

A fault of the worker stops it without committing (``producing.fail_stop``), so the batch is read
again after the restart; before it stops, the stage counts the stop against the messages it was
handling, and one that keeps stopping workers is dead-lettered as ``worker_fault`` (``pipeline.kafka.worker_faults``).
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

from pipeline.errors import WorkerFaultError, invalid_event
from pipeline.kafka.batches import Holder, batches
from pipeline.kafka.dead_letters import dead_letter, error_text
from pipeline.kafka.producing import Outgoing, fail_stop, produce_all, request_limit, require_fit
from pipeline.kafka.table_rows import remember_changelog_offsets
from pipeline.kafka.worker_faults import FaultBook, Segment

log = structlog.get_logger(__name__)

T = TypeVar("T")
BatchHandler = Callable[[Sequence[EventT[bytes]]], Awaitable[list[Outgoing]]]


async def run_stage(
    app: faust.App,
    stream: StreamT[bytes],
    stage: str,
    handle: BatchHandler,
    *,
    faults: FaultBook,
    batch_max: int,
    within_s: float,
    holder: Holder | None = None,
) -> None:
    """Run ``handle`` on the stream's batches. A ``holder`` (the stage behind ``handle``) may keep
    events for a later batch; it gets an empty batch when they are due and nothing else came."""
    structlog.contextvars.bind_contextvars(stage=stage)  # the agent's own task: every line it logs
    async for events in batches(stream, batch_max, within_s, holder):
        started = time.perf_counter()
        oldest = min((e.message.timestamp for e in events), default=None)
        age_ms = None if oldest is None else round((time.time() - oldest) * 1000, 1)  # the oldest's wait
        await faults.read()
        out: Counter[str] = Counter()
        for segment in faults.segments(events) or [Segment("batch", [])]:
            try:
                out.update(await settle(app, faults, stage, handle, segment))
            except Exception as exc:  # noqa: BLE001  (a fault of the worker: stop, commit nothing)
                await faults.record_stop(stage, segment.events, exc)
                fail_stop(stage, exc)
        log.info("batch", stage=stage, events=len(events), out=dict(out),
                 ms=round((time.perf_counter() - started) * 1000, 1), age_ms=age_ms)


async def settle(
    app: faust.App, faults: FaultBook, stage: str, handle: BatchHandler, segment: Segment
) -> Counter[str]:
    """Handle one segment of a batch and produce its outputs; how many went to each topic."""
    if segment.kind == "given_up":
        outgoing = [faults.give_up(stage, segment.events[0])]
    else:
        if segment.kind == "suspect":
            message = segment.events[0].message
            log.warning("handling alone a message that was being handled when a worker stopped", stage=stage,
                        topic=message.topic, partition=message.partition, offset=message.offset,
                        stops=faults.stops(segment.events[0]))
        outgoing = await handle(segment.events)
    remember_changelog_offsets(app, outgoing, await produce_all(app, outgoing))
    if segment.kind == "suspect":  # only once its outputs are acked: a stop while producing them counts
        outgoing.append(faults.cleared(segment.events[0]))
        await produce_all(app, outgoing[-1:])
    return Counter(message.topic for message in outgoing)


def is_worker_fault(error: BaseException) -> bool:
    """Whether ``error``, raised while one event was handled, is a fault of the worker, not the event."""
    return isinstance(error, (WorkerFaultError, MemoryError)) or not isinstance(error, Exception)


def decode_each(
    events: Sequence[EventT[bytes]], stage: str, decode: Callable[[EventT[bytes]], T], dlq_topic: str
) -> tuple[list[T], list[Outgoing]]:
    """``decode`` every event; dead-letter those that fail. (A table row is read and written in its
    event's partition by ``pipeline.kafka.table_rows``.)"""
    decoded: list[T] = []
    dead: list[Outgoing] = []
    for event in events:
        try:
            decoded.append(decode(event))
        except Exception as error:
            if is_worker_fault(error):
                raise
            exc = invalid_event(error) if isinstance(error, ValidationError) else error
            log.warning("dead-lettered", stage=stage, error_class=type(exc).__name__, error=error_text(exc),
                        offset=event.message.offset, partition=event.message.partition)
            dead.append(dead_letter(dlq_topic, event, stage, exc))
    return decoded, dead


def per_event(stage: str, dlq_topic: str, handle: Callable[[EventT[bytes]], list[Outgoing]]) -> BatchHandler:
    """A batch handler that applies ``handle`` to each event on its own; an event whose outputs the
    producer could not send is dead-lettered instead."""

    def handle_fitting(event: EventT[bytes]) -> list[Outgoing]:
        outgoing = handle(event)
        require_fit(outgoing, request_limit(event.app))
        return outgoing

    async def handle_batch(events: Sequence[EventT[bytes]]) -> list[Outgoing]:
        results, dead = decode_each(events, stage, handle_fitting, dlq_topic)
        return [message for messages in results for message in messages] + dead

    return handle_batch
