"""A stage's input in batches that go as soon as the input stops coming: take what is there and go.

Faust's ``Stream.take_events(max_, within)`` waits ``within`` for a batch to fill, so at light load
every stage a change passes adds up to ``within`` (0.2 s each, four stages) before any work is
done. ``batches`` starts a batch at the first event and hands it over once no further event came
for ``QUIET_S``, or it holds ``max_events``, or ``within_s`` passed since its first event. Under
load the stream's queue is full and a batch grows for as long as events keep coming, as before; an
idle stage does not wake up at all until an event arrives.

It fills its batch the way ``take_events`` does (a processor on the stream, which Faust's passive
drainer feeds). The events of a batch are acknowledged when the stage asks for the next batch; unlike
``take_events``, not when the generator is closed while the stage still handles the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, cast

import faust
from faust.types import EventT, StreamT
from mode.utils.futures import notify

QUIET_S = 0.002  # Faust feeds a busy stream an event every few loop turns, far more often than this


class Holder(Protocol):
    """A stage that keeps some events it was handed for a later batch (the dispatcher filling a
    short request): they are acknowledged only once it no longer holds them."""

    def held(self) -> Sequence[EventT[bytes]]:
        """The events handed over so far that the stage still holds."""
        ...

    def due_at(self) -> float | None:
        """When (``time.monotonic()``) the stage wants a batch even if no event came, an empty one,
        to settle what it holds; None when it holds nothing."""
        ...


async def batches(
    stream: StreamT[bytes], max_events: int, within_s: float, holder: Holder | None = None
) -> AsyncIterator[list[EventT[bytes]]]:
    """The stream's events in batches of at most ``max_events``, each handed over once its input
    went quiet, or at most ``within_s`` after its first event; acknowledged when the next is asked
    for, except those the ``holder`` still holds. An empty batch when the holder's due time comes first."""
    faust_stream = cast(faust.Stream[bytes], stream)
    loop = asyncio.get_running_loop()
    events: list[EventT[bytes]] = []
    arrived, taken = asyncio.Event(), asyncio.Event()
    handling: asyncio.Future[None] | None = None  # set while the stage handles a batch

    async def add_to_batch(value: Any) -> Any:
        nonlocal handling
        if handling is not None:  # hold the next event until the batch being handled is done
            try:
                await handling
            finally:
                handling = None
        event = faust_stream.current_event
        if event is None:
            raise RuntimeError("a batched stream got a value without its event")
        events.append(event)
        arrived.set()
        if len(events) >= max_events:
            taken.clear()
            await faust_stream.wait(taken)  # type: ignore[arg-type]  # mode accepts anything with .wait()
        return value

    acks_were_enabled, faust_stream.enable_acks = faust_stream.enable_acks, False  # acknowledged here
    faust_stream.add_processor(add_to_batch)
    faust_stream._enable_passive(cast(Any, aiter(faust_stream.channel)))
    kept: list[EventT[bytes]] = []  # handed over, held by the holder, not acknowledged yet
    try:
        while not faust_stream.should_stop:
            if events:
                await _until_quiet(events, max_events, loop.time() + within_s)
            else:
                arrived.clear()
                if not await _due_before_an_event(faust_stream, arrived, holder.due_at() if holder else None):
                    continue
            batch = list(events)
            handling = loop.create_future()
            try:
                yield batch
                still_held = {id(event) for event in holder.held()} if holder else set()
                done = [event for event in (*kept, *batch) if id(event) not in still_held]
                kept = [event for event in (*kept, *batch) if id(event) in still_held]
                for event in done:
                    await faust_stream.ack(event)
            finally:
                events.clear()
                notify(handling)
                taken.set()
    finally:
        faust_stream.enable_acks = acks_were_enabled
        faust_stream._processors.remove(add_to_batch)


async def _due_before_an_event(stream: faust.Stream[bytes], arrived: asyncio.Event, due_at: float | None) -> bool:
    """Wait for an event or the stream to stop (False), or until ``due_at`` (monotonic; True)."""
    waiting = stream.wait_for_stopped(arrived)  # type: ignore[arg-type]
    if due_at is None:
        await waiting
        return False
    try:
        await asyncio.wait_for(waiting, max(0.0, due_at - time.monotonic()))
    except TimeoutError:
        return True
    return False


async def _until_quiet(events: list[EventT[bytes]], max_events: int, deadline: float) -> None:
    """Return once ``events`` stopped growing for ``QUIET_S``, is full, or ``deadline`` passed."""
    loop = asyncio.get_running_loop()
    while len(events) < max_events and (left := deadline - loop.time()) > 0:
        seen = len(events)
        await asyncio.sleep(min(QUIET_S, left))
        if len(events) == seen:
            return
