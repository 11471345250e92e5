"""A stage's input in batches that go as soon as the input stops coming: take what is there and go.

Faust's ``Stream.take_events(max_, within)`` waits ``within`` for a batch to fill, so at light load
every stage a change passes adds up to ``within`` (0.2 s each, four stages) before any work is
done. ``batches`` starts a batch once something arrived and hands it over once no more came for
``QUIET_S``, or it holds ``max_events``, or ``within_s`` passed. Under load a batch grows for as long
as messages keep coming; an idle stage does not wake up at all until a message arrives.

The messages come from the stage's inbox, one list per fetch (``pipeline.kafka.inbox``), not
through Faust's per-event stream; they are tracked when taken, as Faust's stream tracks them, and
acknowledged when the stage asks for the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, cast

from faust.events import Event
from faust.types import AppT, EventT, Message, StreamT, TopicT

from pipeline.kafka.inbox import Inbox
from pipeline.kafka.transport import Consumer

QUIET_S = 0.002  # how long a batch waits for more once its input pauses: short next to a hop's ~5–20 ms


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
    """The stream's messages in batches of at most ``max_events``, each handed over once its input
    went quiet, or at most ``within_s`` after it began; acknowledged when the next is asked for,
    except those the ``holder`` still holds. An empty batch when the holder's due time comes first."""
    app = stream.app
    consumer = cast(Consumer, app.consumer)
    inbox = consumer.inbox(cast(TopicT, stream.channel).topics)
    loop = asyncio.get_running_loop()
    kept: list[EventT[bytes]] = []  # handed over, held by the holder, not acknowledged yet
    while not stream.should_stop:
        if inbox:
            await _until_quiet(inbox, max_events, loop.time() + within_s)
        elif not await _due_before_arrival(inbox, holder.due_at() if holder else None):
            continue
        batch = _taken(app, inbox.take(max_events))
        yield batch
        still_held = {id(event) for event in holder.held()} if holder else set()
        done = [event for event in (*kept, *batch) if id(event) not in still_held]
        kept = [event for event in (*kept, *batch) if id(event) in still_held]
        _acknowledge(app, done)


def _taken(app: AppT, messages: list[Message]) -> list[EventT[bytes]]:
    """The messages as events, tracked as in flight as Faust's stream tracks them; those of an
    earlier consumer generation, or taken while flow is stopped for a rebalance, are left untracked
    (the commit waits for them and they are read again)."""
    if not messages or not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    consumer = app.consumer
    acks_enabled_for = app.topics.acks_enabled_for
    events: list[EventT[bytes]] = []
    for message in messages:
        if message.generation_id != generation:
            continue
        if not message.tracked and acks_enabled_for(message.topic):
            message.tracked = True
            consumer.track_message(message)
        events.append(Event(app, message.key, message.value, message.headers, message))
    now = time.monotonic()
    for tp in {message.tp for message in messages}:  # Faust's livelock check reads when a stream last took one
        app.monitor.stream_inbound_time[tp] = now
    return events


def _acknowledge(app: AppT, events: list[EventT[bytes]]) -> None:
    """Acknowledge what the stage is done with, except events taken before a rebalance: every
    partition is read again from its commit after one (Faust's recovery seeks there), and a stage
    may have let such an event go unhandled (the dispatcher drops the records it carried). Those
    are no longer counted in flight either, or a stopping worker would wait for them (Faust's
    ``wait_empty``) until it is killed."""
    on_message_out = app.sensors.on_message_out
    in_flight = app.consumer.unacked
    generation = app.consumer_generation_id
    for event in events:
        message = event.message
        if message.generation_id != generation:
            in_flight.discard(message)
        elif event.ack():
            on_message_out(message.tp, message.offset, message)


async def _due_before_arrival(inbox: Inbox, due_at: float | None) -> bool:
    """Wait for a message (False), or until ``due_at`` (monotonic; True)."""
    if due_at is None:
        await inbox.arrived.wait()
        return False
    try:
        await asyncio.wait_for(inbox.arrived.wait(), max(0.0, due_at - time.monotonic()))
    except TimeoutError:
        return True
    return False


async def _until_quiet(inbox: Inbox, max_events: int, deadline: float) -> None:
    """Return once ``inbox`` stopped growing for ``QUIET_S``, is full, or ``deadline`` passed."""
    loop = asyncio.get_running_loop()
    while len(inbox) < max_events and (left := deadline - loop.time()) > 0:
        seen = len(inbox)
        await asyncio.sleep(min(QUIET_S, left))
        if len(inbox) == seen:
            return
