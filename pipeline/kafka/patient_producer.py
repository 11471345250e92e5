"""Sending from a command (produce, backfill, dlq replay, record retry): every message acknowledged
(acks=all) in order per key, through a broker restart, until a deadline; saying so while it waits.

The producer is idempotent: the broker numbers each partition's batches per producer and drops a
batch it already has, and aiokafka sends a partition's batches one at a time, sending a failed one
again with the same numbers. So the producer's own retries are exact: a batch the broker wrote but
whose acknowledgement was lost is not written twice, and no later batch overtakes it. A resend of
ours would not be: it goes out under new numbers, so a batch written but unacknowledged would be
written again after the ones that followed it (an older version of a record after its newer one),
and once aiokafka fails one batch the partition's later batches fail too (their numbers no longer
follow on). What must not happen, then, is aiokafka giving up: it fails a batch that waited longer
than its request timeout (40 s by default) while its partition had no leader, as every partition
has none while a single broker restarts (issue #10: `contactsync produce` stopped at the broker's
return). Here that timeout is past the deadline, so within it the producer keeps and resends every
batch; this module watches it, logs one line each time the wait grows (5, 10, 20 s, then every
20 s) and one when Kafka acknowledges again, and gives up at the deadline with one line.

A broker that cannot be reached when the command starts is reported at once by
``pipeline.kafka.clients`` (a wrong address should not wait two minutes); one that goes away while
the command runs is waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from pipeline.errors import ConfigError
from pipeline.kafka.producing import Outgoing

__all__ = ["PatientProducer", "request_timeout_ms"]

log = structlog.get_logger(__name__)

_FIRST_NOTICES_S = (5.0, 10.0, 20.0)  # then one every _NOTICE_EVERY_S
_NOTICE_EVERY_S = 20.0
_POLL_S = 0.5
_TIMEOUT_MARGIN_S = 10.0  # aiokafka's own timeout comes this long after ours: we give up first, in our words
_STOP_AFTER_GIVING_UP_S = 5.0


def request_timeout_ms(deadline_s: float) -> int:
    """The producer's request timeout (its batches' lifetime without a leader) for ``deadline_s``."""
    return int((deadline_s + _TIMEOUT_MARGIN_S) * 1000)


class PatientProducer:
    """An idempotent acks=all producer (made with :func:`request_timeout_ms`) and the wait for its
    acknowledgements: :meth:`send_all` returns once the broker has every message."""

    def __init__(self, producer: AIOKafkaProducer, bootstrap: str, deadline_s: float) -> None:
        self._producer = producer
        self._bootstrap = bootstrap
        self._deadline_s = deadline_s
        self._gave_up = False

    async def send_all(self, messages: Iterable[Outgoing]) -> list[RecordMetadata]:
        """Send ``messages`` in their order and wait until every one is acknowledged; their metadata.

        ConfigError (one line) if Kafka acknowledges nothing for the deadline.
        """
        progress = _Progress(moved_at=time.monotonic())
        delivery = asyncio.ensure_future(self._deliver(messages, progress))
        try:
            while True:
                await asyncio.wait({delivery}, timeout=_POLL_S)
                self._tell(progress)
                if delivery.done():
                    return delivery.result()
                if time.monotonic() - progress.moved_at >= self._deadline_s:
                    self._gave_up = True
                    raise ConfigError(
                        f"Kafka at {self._bootstrap} acknowledged nothing for {self._deadline_s:.0f}s; gave up with "
                        f"{progress.sent - progress.acked} messages unacknowledged (written or not); wait longer "
                        "with CONTACTSYNC_KAFKA__RETRY_DEADLINE_S"
                    )
        finally:
            if not delivery.done():
                delivery.cancel()
                with suppress(asyncio.CancelledError):
                    await delivery

    async def stop(self) -> None:
        """Stop the producer once what it holds is acknowledged; after a give-up, without waiting
        long (it would keep its batches until the broker is back)."""
        if self._gave_up:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._producer.stop(), _STOP_AFTER_GIVING_UP_S)
        else:
            await self._producer.stop()

    async def _deliver(self, messages: Iterable[Outgoing], progress: _Progress) -> list[RecordMetadata]:
        futures = []
        for message in messages:
            future = await self._producer.send(
                message.topic, message.value, key=message.key, partition=message.partition,
                headers=message.headers or None,
            )
            progress.sent += 1
            future.add_done_callback(lambda _: progress.acknowledged(time.monotonic()))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    def _tell(self, progress: _Progress) -> None:
        """One line when the wait reaches its next notice, and one when acknowledgements resume."""
        if progress.told and progress.moved_at > progress.stalled_at:
            log.warning("Kafka acknowledges again", bootstrap=self._bootstrap,
                        waited_s=round(progress.moved_at - progress.stalled_at))
            progress.told = 0
        waited = time.monotonic() - progress.moved_at
        if waited >= _notice_after_s(progress.told):
            log.warning(
                "Kafka acknowledges nothing; still trying", bootstrap=self._bootstrap, waited_s=round(waited),
                unacknowledged=progress.sent - progress.acked, gives_up_after_s=self._deadline_s,
            )
            progress.told += 1
            progress.stalled_at = progress.moved_at


@dataclass
class _Progress:
    """How one ``send_all`` is going: since when nothing was acknowledged, and what was told of it."""

    moved_at: float  # the start, or the last acknowledgement
    sent: int = 0
    acked: int = 0
    told: int = 0  # notices given about the current wait
    stalled_at: float = 0.0  # the moved_at of the wait last told about

    def acknowledged(self, now: float) -> None:
        self.acked += 1
        self.moved_at = now


def _notice_after_s(told: int) -> float:
    """How long a wait lasts before its notice number ``told`` (from 0): 5, 10, 20, 40, 60, ... s."""
    if told < len(_FIRST_NOTICES_S):
        return _FIRST_NOTICES_S[told]
    return _FIRST_NOTICES_S[-1] + _NOTICE_EVERY_S * (told - len(_FIRST_NOTICES_S) + 1)
