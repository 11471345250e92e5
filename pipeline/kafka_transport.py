"""Faust's aiokafka transport, changed so that an offset is committed only once a stream handled it,
and so that a partition whose messages went missing inside the worker is fetched again.

Faust's stream drops the messages it fetched before a rebalance, or while flow control was suspended
for one, and acknowledges them anyway (``Stream._py_aiter``: ``do_ack or value is skipped_value``);
its commit also steps over one missing offset at the committed position (``Consumer._new_offset``).
Either way the group's commit could pass messages no stream handled, and the next owner of the
partition started after them: changes lost in worker start-ups and rebalances.

Here a message that reaches a stream is tracked before the agent sees it, a dropped one never is:
the consumer refuses to acknowledge untracked messages and never commits past one, nor past
offsets the fetch jumped over (Faust counts those as handled) unless reading again shows the same
jump. A partition whose commit waits like that, or that has messages after its commit none of
which is queued or in flight, is sought back to its commit and read again; what was handled after
the gap is handled twice, which every stage tolerates (the version guard settles repeated
deliveries as superseded).

Used through the ``faust.transports`` entry point (pyproject.toml) as the ``contactsync://`` scheme.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from faust.transport.drivers import aiokafka
from faust.types import TP, Message
from mode import Service

log = structlog.get_logger(__name__)

STUCK_AFTER_S = 10.0  # a partition with work but nothing queued or in flight this long is read again


class Consumer(aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unhandled: dict[TP, set[int]] = {}
        self._idle_since: dict[TP, float] = {}
        self._gaps_seen: dict[TP, tuple[int, int]] = {}

    def ack(self, message: Message) -> bool:
        if message.tracked:
            self._unhandled.get(message.tp, set()).discard(message.offset)
            return super().ack(message)
        if self.app.topics.acks_enabled_for(message.topic):
            self._unhandled.setdefault(message.tp, set()).add(message.offset)
        return False

    def _new_offset(self, tp: TP) -> int | None:
        first_unhandled = self._first_unhandled(tp)
        acked = self._acked[tp]
        start = min(acked) if acked else None
        offset = super()._new_offset(tp)
        if offset is None or first_unhandled is None or offset <= first_unhandled:
            return offset
        # Faust's batch ran past a message no stream handled: give the batch back.
        assert start is not None
        batch = range(start, offset)
        acked.extend(batch)
        acked.sort()
        self._acked_index[tp].update(batch)
        return None

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust counts offsets the fetcher jumped over as handled. Offsets can be missing from a log
        (transaction markers, compaction), but a jump is also what messages dropped inside the
        worker look like; so a gap counts only when reading the partition again shows it again."""
        if self._gaps_seen.get(tp) == (offset_from, offset_to):
            await super()._add_gap(tp, offset_from, offset_to)
            return
        self._gaps_seen[tp] = (offset_from, offset_to)
        log.warning("offsets skipped by the fetch; reading them again", topic=tp.topic,
                    partition=tp.partition, first=offset_from, last=offset_to)
        self._unhandled.setdefault(tp, set()).add(offset_from)

    def _first_unhandled(self, tp: TP) -> int | None:
        unhandled = self._unhandled.get(tp)
        if not unhandled:
            return None
        committed = self._committed_offset[tp]
        if committed is not None:
            unhandled.difference_update([offset for offset in unhandled if offset < committed])
        return min(unhandled, default=None)

    @Service.task
    async def _read_stuck_partitions_again(self) -> None:
        async for _ in self.itertimer(STUCK_AFTER_S / 4, name="stuck-partitions"):
            if not self.flow_active or self.app.rebalancing:
                self._idle_since.clear()
                continue
            now = time.monotonic()
            for tp in self._stuck_now():
                since = self._idle_since.setdefault(tp, now)
                if now - since >= STUCK_AFTER_S:
                    committed = self._committed_offset[tp]
                    assert committed is not None
                    log.warning("reading a stuck partition again", topic=tp.topic, partition=tp.partition,
                                offset=committed, end=self.highwater(tp), read=self._read_offset[tp])
                    self._idle_since.pop(tp)
                    await self.seek(tp, committed)

    def _stuck_now(self) -> set[TP]:
        """Partitions whose commit waits for a message no stream handled, and partitions with
        messages after their commit none of which is queued for a stream or being handled by one
        (whatever was fetched after the commit was lost inside the worker)."""
        in_flight = {message.tp for message in self._unacked_messages if not message.acked}
        stuck = set()
        for tp in self.assignment():
            committed = self._committed_offset[tp]
            if (
                committed is None
                or tp in self._paused_partitions
                or not self.app.topics.acks_enabled_for(tp.topic)
                or self.highwater(tp) <= committed
            ):
                continue
            if self._first_unhandled(tp) is not None:
                stuck.add(tp)
            elif tp not in in_flight and all(
                channel.queue.empty() for channel in self.app.topics._tp_index.get(tp, ())
            ):
                stuck.add(tp)
        for tp in set(self._idle_since) - stuck:
            del self._idle_since[tp]
        return stuck

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._unhandled.pop(tp, None)
        await super().on_partitions_revoked(revoked)


class Transport(aiokafka.Transport):
    Consumer = Consumer
