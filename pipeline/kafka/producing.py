"""Producing a stage's outputs in bulk, and stopping hard when Kafka will not take them.

A stage acknowledges its input batch only after ``produce_all`` returns, so an offset is never
committed before the outputs of its events are on the broker (acks=all).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import faust
import structlog
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types import AppT, RecordMetadata

from pipeline.errors import OutputTooLargeError

log = structlog.get_logger(__name__)

EXIT_PRODUCE_FAILED = 75  # EX_TEMPFAIL: a supervisor restarts the worker, which resumes from its last commit


@dataclass(frozen=True)
class Outgoing:
    """One message to produce; the partition is the key's unless set (table changelogs set it)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None


def request_limit(app: AppT) -> int:
    """The largest message the worker's producer sends: the ``max_request_size`` Faust gives aiokafka."""
    return int(app.conf.producer_max_request_size)


def message_size(message: Outgoing) -> int:
    """The size aiokafka checks against ``max_request_size`` (a batch holding only this record)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(message.key, message.value, message.headers))


def require_fit(messages: Iterable[Outgoing], limit: int) -> None:
    """OutputTooLargeError if any message is larger than ``limit`` bytes, which the producer would refuse."""
    for message in messages:
        size = message_size(message)
        if size > limit:
            raise OutputTooLargeError(
                f"its output to {message.topic} would be {size} bytes, more than the producer sends "
                f"(max_request_size {limit})"
            )


async def produce_all(app: faust.App, messages: Sequence[Outgoing]) -> list[RecordMetadata]:
    """Send every message and wait until the broker acknowledged all of them (acks=all).

    Table rows are written with ``pipeline.kafka.table_rows``, whose changelog messages are among
    ``messages``: a version recorded as delivered is durable before the offsets that led to it are
    committed. (Nothing goes through Faust's producer buffer, so there is nothing to flush.)
    """
    futures = [
        await app.producer.send(m.topic, m.key, m.value, m.partition, None, m.headers or None)
        for m in messages
    ]
    return list(await asyncio.gather(*futures))


def fail_stop(stage: str, exc: BaseException) -> None:
    """Stop the worker at once, committing nothing more.

    Faust acknowledges a batch when its agent raises, so an exception that leaves a stage would lose
    the batch. Exiting the process without the normal shutdown (which commits acknowledged offsets)
    means the batch is read again by whichever worker takes over its partitions.
    """
    log.critical("stage failed; stopping the worker without committing", stage=stage,
                 error_class=type(exc).__name__, error=str(exc))
    os._exit(EXIT_PRODUCE_FAILED)
