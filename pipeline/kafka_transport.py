"""Faust's aiokafka transport, changed so that an offset is committed only once a stream handled it.

Faust's stream drops the messages it fetched before a rebalance, or while flow control was suspended
for one, and acknowledges them anyway (``Stream._py_aiter``: ``do_ack or value is skipped_value``);
its commit also steps over one missing offset at the committed position (``Consumer._new_offset``).
Either way the group's commit can pass messages no stream handled, and the next owner of the
partition starts after them: changes lost in worker start-ups and rebalances.

Here a message that reaches a stream is tracked before the agent sees it, a dropped one never is:
the consumer refuses to acknowledge untracked messages, remembers their offsets as unhandled, never
commits past one, and seeks the partition back to it so that it is fetched and handled again (what
was handled after it is handled twice: every stage is idempotent, and the version guard settles
repeated deliveries as superseded).

Used through the ``faust.transports`` entry point (pyproject.toml) as the ``contactsync://`` scheme.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from faust.transport.drivers import aiokafka
from faust.types import TP, Message

log = structlog.get_logger(__name__)


class Consumer(aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unhandled: dict[TP, set[int]] = {}
        self._seeking_back: set[TP] = set()

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
        # Faust's batch ran past a message no stream handled: give it back and fetch that one again.
        assert start is not None
        batch = range(start, offset)
        acked.extend(batch)
        acked.sort()
        self._acked_index[tp].update(batch)
        self._fetch_again(tp, first_unhandled)
        return None

    def _first_unhandled(self, tp: TP) -> int | None:
        unhandled = self._unhandled.get(tp)
        if not unhandled:
            return None
        committed = self._committed_offset[tp]
        if committed is not None:
            unhandled.difference_update([offset for offset in unhandled if offset < committed])
        return min(unhandled, default=None)

    def _fetch_again(self, tp: TP, offset: int) -> None:
        """Seek ``tp`` back to ``offset`` if the fetcher has gone past it (never forward)."""
        read = self._read_offset[tp]
        if tp in self._seeking_back or read is None or read < offset or tp not in self.assignment():
            return
        self._seeking_back.add(tp)

        async def seek_back() -> None:
            try:
                log.warning("fetching again", topic=tp.topic, partition=tp.partition, offset=offset)
                await self.seek(tp, offset)
            finally:
                self._seeking_back.discard(tp)

        asyncio.ensure_future(seek_back())

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._unhandled.pop(tp, None)
        await super().on_partitions_revoked(revoked)


class Transport(aiokafka.Transport):
    Consumer = Consumer
