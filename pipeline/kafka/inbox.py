"""A stage's fetched messages, handed to it in batches below Faust's per-event stream.

Faust passes every fetched message on its own through the conductor, a channel queue and the
stream's iterator (a lock, a task race against flow control, an event, sensors and processors per
message): on the four-hop relay that path alone cost ~5× the bare Kafka client (issue #12). Here the
consumer (``pipeline.kafka.transport``) hands each fetch of a stage's partitions to the stage's inbox
as one list, and the stage takes what is there (``pipeline.kafka.batches``). Every agent of the app
has one, by the topics it reads, from the first fetch on: a stage that starts late (transform waits
for the stored rules) finds what came meanwhile. A topic two agents read (``contacts.transformed``:
route, and conflict when webhooks are received) goes to both, and a message is acknowledged once
both acknowledged it.

The inbox behaves as Faust's channel queue does where it matters: a message is tracked (counted as
in flight, so the commit waits for it) only when the stage takes it, so what the inbox drops is read
again from the commit; it is emptied when flow resumes after a rebalance (``FlowControlEvent``
clears the queues it manages), and a message of an older consumer generation is not handed over; a
full inbox pauses the fetch of its partitions, as a full channel queue does, without holding up
any other topic.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable

from faust.types import TP, Message


class Inbox:
    """Messages of one stage's partitions, in fetch order per partition, up to about ``maxsize``."""

    def __init__(self, maxsize: int, pause: Callable[[TP], None], resume: Callable[[TP], None]) -> None:
        self.maxsize = maxsize
        self._pause, self._resume = pause, resume
        self._messages: deque[Message] = deque()
        self._per_partition: Counter[TP] = Counter()
        self._paused: set[TP] = set()
        self.arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._messages)

    def put(self, tp: TP, messages: list[Message]) -> None:
        """Add one fetch of ``tp``; pause fetching ``tp`` while the inbox is full."""
        self._messages.extend(messages)
        self._per_partition[tp] += len(messages)
        self.arrived.set()
        if len(self._messages) >= self.maxsize and tp not in self._paused:
            self._paused.add(tp)
            self._pause(tp)

    def take(self, most: int) -> list[Message]:
        """Up to ``most`` of the oldest messages; fetching resumes once half the room is free."""
        messages = self._messages
        taken = [messages.popleft() for _ in range(min(most, len(messages)))]
        self._per_partition.subtract(message.tp for message in taken)
        if not messages:
            self.arrived.clear()
        if self._paused and len(messages) < self.maxsize // 2:
            self._resume_all()
        return taken

    def holds(self, tp: TP) -> bool:
        """Whether a message of ``tp`` waits here (the stuck-partition check counts it as queued)."""
        return self._per_partition[tp] > 0

    def clear(self) -> None:
        """Drop everything: called when flow resumes after a rebalance, as Faust clears its queues."""
        self._messages.clear()
        self._per_partition.clear()
        self.arrived.clear()
        self._resume_all()

    def _resume_all(self) -> None:
        for tp in self._paused:
            self._resume(tp)
        self._paused.clear()
