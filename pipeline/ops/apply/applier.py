"""The applier's loop: ``contacts.changes.inbound`` into the contacts table, as a group of its own.

Each batch fetched is written in one database transaction (a savepoint per change); its offsets are
committed only after that transaction is. A change the table refuses (a value its column cannot
hold, a unique constraint) and a message that is not an ``InboundResolved`` go to the dead-letter
topic with the reason, acknowledged before the batch's offsets are committed, and the loop goes on.
A stop (SIGINT, SIGTERM) ends the loop between batches: nothing is half-applied, and a restart
resumes after the last committed batch; replaying a change the table has is a no-op (the applied
clock, ``pipeline.stages.apply``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import TypeAlias

import psycopg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError

from pipeline.errors import ConfigError, invalid_event
from pipeline.kafka.clients import acked_producer, group_consumer
from pipeline.kafka.dead_letters import letter_message, now_ms
from pipeline.kafka.producing import Outgoing
from pipeline.ops.apply.table import RECORD_FAULTS, ContactsTable
from pipeline.ops.backfill.from_postgres import one_line
from schemas.dead_letter import DeadLetter
from schemas.inbound import InboundResolved

STAGE = "apply"
REQUEST_LIMIT = 1_048_576  # aiokafka's default max_request_size, which acked_producer keeps
_POLL_MS = 1000
_BATCH_MAX = 500
log = structlog.get_logger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


@dataclass(frozen=True)
class ApplierTopics:
    changes: str  # contacts.changes.inbound
    dlq: str


async def run_applier(
    table: ContactsTable, bootstrap: str, topics: ApplierTopics, group: str, stop: asyncio.Event,
    *, until_idle: bool, retry_deadline_s: float,
) -> Counter[str]:
    """Apply changes until ``stop`` is set (or, with ``until_idle``, until every partition is read to
    its end); the count of each outcome."""
    counts: Counter[str] = Counter()
    async with (
        group_consumer(bootstrap, f"{group}-consumer", group, topics.changes) as consumer,
        acked_producer(bootstrap, f"{group}-dlq", retry_deadline_s) as producer,
    ):
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_BATCH_MAX)
            if not batches:
                if until_idle and await _read_to_end(consumer):
                    break
                continue
            # in a thread: the consumer keeps its heartbeats going while the database works
            letters = await asyncio.to_thread(_apply_batch, table, topics.dlq, batches, counts)
            if letters:
                await producer.send_all(letters)
            await _commit(consumer, batches)
    return counts


def _apply_batch(
    table: ContactsTable, dlq: str, batches: dict[TopicPartition, list[Record]], counts: Counter[str]
) -> list[Outgoing]:
    """Write the batch in one transaction; the dead letters of the changes that could not be written."""
    letters: list[Outgoing] = []
    batch: Counter[str] = Counter()
    try:
        with table.batch():
            for record in (record for records in batches.values() for record in records):
                letter = _apply_one(table, dlq, record, batch)
                if letter is not None:
                    letters.append(letter)
    except psycopg.Error as exc:
        raise ConfigError(f"Postgres: {one_line(exc)}; the batch was not applied nor committed: run the same "
                          "command again to resume") from None
    counts.update(batch)
    log.info("applied batch", stage=STAGE, changes=sum(batch.values()), **batch)
    return letters


def _apply_one(table: ContactsTable, dlq: str, record: Record, counts: Counter[str]) -> Outgoing | None:
    try:
        change = InboundResolved.model_validate_json(record.value or b"")
    except ValidationError as exc:
        counts["dead_lettered"] += 1
        return _letter(dlq, record, invalid_event(exc))
    try:
        outcome, write = table.apply(change)
    except RECORD_FAULTS as exc:
        counts["dead_lettered"] += 1
        log.warning("change refused by the table", stage=STAGE, record_id=change.record_id,
                    provider=change.provider, error=type(exc).__name__, sqlstate=exc.sqlstate)
        return _letter(dlq, record, exc, one_line(exc))
    counts[outcome] += 1
    log.debug("change", stage=STAGE, record_id=change.record_id, provider=change.provider, outcome=outcome,
              older=write.older, unmapped=write.unmapped)
    return None


def _letter(dlq: str, record: Record, error: Exception, message: str = "") -> Outgoing:
    failed_at = now_ms()
    story = DeadLetter(
        stage=STAGE, error_class=type(error).__name__, error_message=message or str(error),
        original_topic=record.topic, original_partition=record.partition, original_offset=record.offset,
        first_failure_ms=failed_at, last_failure_ms=failed_at,
    )
    return letter_message(dlq, record.key, record.value, story, REQUEST_LIMIT)


async def _commit(consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Record]]) -> None:
    offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
    try:
        await consumer.commit(offsets)
    except CommitFailedError:  # a rebalance took the partitions: their next owner applies them again, a no-op
        log.warning("offsets not committed (rebalance)", stage=STAGE, partitions=len(offsets))


async def _read_to_end(consumer: AIOKafkaConsumer) -> bool:
    """Whether the consumer holds partitions and has read each of them to its end."""
    assigned = list(consumer.assignment())
    if not assigned:
        return False
    ends = await consumer.end_offsets(assigned)
    positions = {tp: await consumer.position(tp) for tp in assigned}
    return all(positions[tp] >= ends[tp] for tp in assigned)
