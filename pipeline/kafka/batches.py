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
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.types import EventT, StreamT
from mode.utils.futures import notify

QUIET_S = 0.002  # Faust feeds a busy stream an event every few loop turns, far more often than this


async def batches(stream: StreamT[bytes], max_events: int, within_s: float) -> AsyncIterator[list[EventT[bytes]]]:
    """The stream's events in batches of at most ``max_events``, each handed over once its input
    went quiet, or at most ``within_s`` after its first event; acknowledged when the next is asked for."""
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
    try:
        while not faust_stream.should_stop:
            if not events:
                arrived.clear()
                await faust_stream.wait_for_stopped(arrived)  # type: ignore[arg-type]
                continue
            await _until_quiet(events, max_events, loop.time() + within_s)
            batch = list(events)
            handling = loop.create_future()
            try:
                yield batch
                for event in batch:
                    await faust_stream.ack(event)
            finally:
                events.clear()
                notify(handling)
                taken.set()
    finally:
        faust_stream.enable_acks = acks_were_enabled
        faust_stream._processors.remove(add_to_batch)


async def _until_quiet(events: list[EventT[bytes]], max_events: int, deadline: float) -> None:
    """Return once ``events`` stopped growing for ``QUIET_S``, is full, or ``deadline`` passed."""
    loop = asyncio.get_running_loop()
    while len(events) < max_events and (left := deadline - loop.time()) > 0:
        seen = len(events)
        await asyncio.sleep(min(QUIET_S, left))
        if len(events) == seen:
            return
