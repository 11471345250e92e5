"""The last line of defence: a message that keeps stopping workers is dead-lettered as ``worker_fault``.

A fault of the worker stops it without committing (``pipeline.kafka.stage_loop``), so the same messages
are read again, by this worker after a restart or by another after a rebalance. Should a message be
what makes the worker fail (a bug, a message the broker refuses), every owner of its partition would
die in turn. So before it stops, the stage records a stop against each message it was handling in
``contacts.faults`` (compacted, keyed ``<topic>:<partition>:<offset>``, acks=all), and every worker
reads that topic (from its start, then as it grows, in no consumer group):

* a message with a stop recorded is a suspect: it is handled alone, so that a stop while handling it
  is its own (the first stop, on a whole batch, is recorded against every message of the batch);
  once handled, its record is removed (a tombstone);
* a message with ``worker_fault_stops`` (N) stops is not handled at all: it is dead-lettered with
  error class ``worker_fault``, an ERROR line and ``contactsync_worker_fault_letters_total``, and the
  partition moves on. N is at least 2, so a message that merely shared a batch with the culprit is
  never dead-lettered for it.

A stop caused by the broker (unreachable, timing out, moving leaders) counts against no message,
and a stop that cannot be recorded (the broker is gone) is simply not counted. A worker reads the
topic up to its end before its stages handle anything, and again after each partition assignment,
so a stop recorded by the worker that had a partition before is known when the partition arrives.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, ProducerClosed
from faust.types import EventT, Message
from pydantic import ValidationError

from pipeline.errors import WorkerFaultError
from pipeline.kafka.clients import acked_producer, groupless_consumer
from pipeline.kafka.dead_letters import dead_letter, error_text, now_ms
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.topic_admin import require_topics
from pipeline.kafka.topics import TopicCatalog
from schemas.fault import WorkerStops

log = structlog.get_logger(__name__)

WORKER_FAULT = "worker_fault"
RECORD_TIMEOUT_S = 15.0  # longest a stopping worker tries to record its stop


def fault_key(message: Message) -> str:
    return f"{message.topic}:{message.partition}:{message.offset}"


def broker_trouble(error: BaseException) -> bool:
    """Whether ``error`` says the broker could not be reached or could not answer in time: such a stop
    is no message's fault."""
    if isinstance(error, KafkaError):
        return bool(error.retriable) or isinstance(error, (KafkaTimeoutError, ProducerClosed))
    return isinstance(error, TimeoutError)


@dataclass(frozen=True)
class Segment:
    """Events of a batch handled together: ``batch`` events with no stop recorded, or one event:
    a ``suspect`` to handle alone, or one ``given_up`` on (dead-lettered without handling)."""

    kind: Literal["batch", "suspect", "given_up"]
    events: Sequence[EventT[bytes]]


def segments(
    events: Sequence[EventT[bytes]], stops_of: Callable[[EventT[bytes]], int], give_up_at: int
) -> list[Segment]:
    """``events`` cut into segments, in order, by the stops recorded against each."""
    cut: list[Segment] = []
    run: list[EventT[bytes]] = []
    for event in events:
        stops = stops_of(event)
        if stops == 0:
            run.append(event)
            continue
        if run:
            cut.append(Segment("batch", run))
            run = []
        cut.append(Segment("given_up" if stops >= give_up_at else "suspect", [event]))
    if run:
        cut.append(Segment("batch", run))
    return cut


class FaultBook:
    """The stops recorded against messages, as this worker knows them, and how it records one."""

    def __init__(self, bootstrap: str, catalog: TopicCatalog, give_up_at: int) -> None:
        self.bootstrap = bootstrap
        self.catalog = catalog
        self.give_up_at = give_up_at
        self.given_up: Counter[str] = Counter()  # per stage: messages dead-lettered as worker_fault
        self._records: dict[str, WorkerStops] = {}
        self._reads_wanted = 1  # one read to the end at the start, one more per partition assignment
        self._reads_done = 0
        self._read = asyncio.Event()

    def stops(self, event: EventT[bytes]) -> int:
        record = self._records.get(fault_key(event.message))
        return 0 if record is None else record.stops

    def segments(self, events: Sequence[EventT[bytes]]) -> list[Segment]:
        return segments(events, self.stops, self.give_up_at)

    async def read(self) -> None:
        """Wait until every stop recorded before the last partition assignment is known here."""
        await self._read.wait()

    async def on_partitions_assigned(self, *_: Any, **__: Any) -> None:
        """Faust's ``on_partitions_assigned`` signal: a partition may come with stops recorded elsewhere."""
        self._reads_wanted += 1
        self._read.clear()

    async def follow(self, client_id: str) -> None:
        """Apply every record of the topic, from its start, forever."""
        await require_topics(self.bootstrap, self.catalog.faults)
        partitions = [TopicPartition(self.catalog.faults, p) for p in range(self.catalog.partitions)]
        async with groupless_consumer(self.bootstrap, client_id) as consumer:
            consumer.assign(partitions)
            for tp, start in (await consumer.beginning_offsets(partitions)).items():
                consumer.seek(tp, start)
            while True:
                wanted = self._reads_wanted
                if self._reads_done < wanted:
                    ends = await self._end_offsets(consumer, partitions)
                    while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                        self._apply(await consumer.getmany(timeout_ms=500))
                    self._reads_done = wanted
                    if self._reads_wanted == wanted:
                        self._read.set()
                self._apply(await consumer.getmany(timeout_ms=500))

    @staticmethod
    async def _end_offsets(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The topic's end offsets now, asked again until the broker answers (the stages wait meanwhile)."""
        while True:
            try:
                ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
                return ends
            except KafkaError as exc:
                log.warning("cannot read the worker stops to their end yet; trying again",
                            error_class=type(exc).__name__)
                await asyncio.sleep(1.0)

    def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for records in batches.values():
            for record in records:
                key = (record.key or b"").decode(errors="replace")
                if record.value is None:
                    self._records.pop(key, None)
                    continue
                try:
                    self._records[key] = WorkerStops.model_validate_json(record.value)
                except ValidationError:
                    log.warning("not a record of worker stops; ignored", topic=record.topic, key=key)

    def cleared(self, event: EventT[bytes]) -> Outgoing:
        """The tombstone that removes ``event``'s record: it was handled, alone, without a stop."""
        return Outgoing(self.catalog.faults, fault_key(event.message).encode(), None)

    def give_up(self, stage: str, event: EventT[bytes]) -> Outgoing:
        """The ``worker_fault`` dead letter of ``event``, which stopped workers ``give_up_at`` times."""
        message = event.message
        record = self._records[fault_key(message)]
        self.given_up[stage] += 1
        log.error("dead-lettered: this message kept stopping the worker", stage=stage, error_class=WORKER_FAULT,
                  topic=message.topic, partition=message.partition, offset=message.offset, stops=record.stops,
                  last_error_class=record.error_class)
        reason = (f"made a worker stop {record.stops} times, the last at {record.stage} with "
                  f"{record.error_class}: {record.error}; dead-lettered so that its partition moves on")
        return dead_letter(self.catalog.dlq, event, stage, WorkerFaultError(reason), attempts=record.stops,
                           error_class=WORKER_FAULT)

    async def record_stop(self, stage: str, events: Sequence[EventT[bytes]], error: BaseException) -> None:
        """Count a stop against each of ``events`` (acks=all), unless the broker caused it or is gone."""
        if broker_trouble(error):
            log.warning("stop not counted against any message: the broker is unreachable or slow", stage=stage,
                        error_class=type(error).__name__)
            return
        at_ms = now_ms()
        records = [
            (fault_key(event.message), WorkerStops(
                stops=self.stops(event) + 1, stage=stage, error_class=type(error).__name__,
                error=error_text(error), at_ms=at_ms,
            ))
            for event in events
        ]
        try:
            await asyncio.wait_for(self._produce(records), RECORD_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001  (stopping anyway: say why the stop was not counted)
            log.warning("stop not counted: it could not be recorded", stage=stage, error_class=type(exc).__name__,
                        error=error_text(exc))
            return
        log.error("stop counted against the messages being handled", stage=stage, messages=len(records),
                  first=records[0][0], stops=max(record.stops for _, record in records), give_up_at=self.give_up_at)

    async def _produce(self, records: list[tuple[str, WorkerStops]]) -> None:
        async with acked_producer(self.bootstrap, "contactsync-faults", RECORD_TIMEOUT_S) as producer:
            await producer.send_all(
                Outgoing(self.catalog.faults, key.encode(), record.model_dump_json().encode())
                for key, record in records
            )
