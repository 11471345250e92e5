"""Producing a stage's outputs in bulk, and stopping hard when Kafka will not take them.

A stage acknowledges its input batch only after ``produce_all`` returns, so an offset is never
committed before the outputs of its events are on the broker (acks=all).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import faust
import structlog
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types import AppT, RecordMetadata

from pipeline.errors import OutputTooLargeError

log = structlog.get_logger(__name__)

EXIT_PRODUCE_FAILED = 75  # EX_TEMPFAIL: a supervisor restarts the worker, which resumes from its last commit


@dataclass(slots=True)  # not frozen: a frozen dataclass is built at twice the cost, ~9 times per change
class Outgoing:
    """One message to produce; the partition is the key's unless set (table changelogs set it).
    Never changed once built."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None


@functools.cache  # read for every output; Faust's settings object is slow to read and never changes
def request_limit(app: AppT) -> int:
    """The largest message the worker's producer sends: the ``max_request_size`` Faust gives aiokafka."""
    return int(app.conf.producer_max_request_size)


def message_size(message: Outgoing) -> int:
    """The size aiokafka checks against ``max_request_size`` (a batch holding only this record)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(message.key, message.value, message.headers))


# What a record batch of one record adds to its key and value, at most (each length a varint of at most
# 5 bytes): a message whose key and value leave this much room fits without adding its size up.
_MOST_OVERHEAD = DefaultRecordBatchBuilder.estimate_size_in_bytes(None, None, []) + 8


def require_fit(messages: Iterable[Outgoing], limit: int) -> None:
    """OutputTooLargeError if any message is larger than ``limit`` bytes, which the producer would refuse."""
    for message in messages:
        if not message.headers and len(message.key or b"") + len(message.value or b"") + _MOST_OVERHEAD <= limit:
            continue
        size = message_size(message)
        if size > limit:
            raise OutputTooLargeError(
                f"its output to {message.topic} would be {size} bytes, more than the producer sends "
                f"(max_request_size {limit})"
            )


async def produce_all(app: faust.App, messages: Sequence[Outgoing]) -> list[RecordMetadata]:
    """Send every message and wait until the broker acknowledged all of them (acks=all); the
    metadata of each, in order.

    Table rows are written with ``pipeline.kafka.table_rows``, whose changelog messages are among
    ``messages``: a version recorded as delivered is durable before the offsets that led to it are
    committed. (Nothing goes through Faust's producer buffer, so there is nothing to flush.)

    The messages go as one record batch per partition (``send_batch``), in their order, rather
    than one ``send`` each: a send costs a future, a metadata wait and a partitioner call per message,
    about a tenth of a worker's CPU. The partition is the one ``send`` would pick.
    """
    if not messages:
        return []
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]  # Faust's aiokafka producer
    by_partition: dict[tuple[str, int], list[int]] = {}
    partitions_of: dict[str, tuple[list[int], list[int]]] = {}  # all, available: read once per topic
    cluster = producer.client.cluster
    by_key_hash = isinstance(producer._partitioner, DefaultPartitioner)
    for topic in {message.topic for message in messages}:
        await producer.client._wait_on_metadata(topic)
        partitions_of[topic] = (
            list(cluster.partitions_for_topic(topic)), list(cluster.available_partitions_for_topic(topic))
        )
    for index, message in enumerate(messages):
        partition = message.partition
        if partition is None:  # as send() picks it (the producer's _partition), the topic's partitions read once
            every, available = partitions_of[message.topic]
            if by_key_hash and message.key is not None:
                partition = every[key_hash(message.key) % len(every)]
            else:
                partition = producer._partitioner(message.key, every, available)
        by_partition.setdefault((message.topic, partition), []).append(index)
    sent: list[tuple[asyncio.Future[RecordMetadata], list[int]]] = []
    for (topic, partition), indices in by_partition.items():
        batch, in_batch = producer.create_batch(), list[int]()
        for index in indices:
            message = messages[index]
            while batch.append(key=message.key, value=message.value, timestamp=None, headers=message.headers) is None:
                sent.append((await producer.send_batch(batch, topic, partition=partition), in_batch))
                batch, in_batch = producer.create_batch(), list[int]()
            in_batch.append(index)
        sent.append((await producer.send_batch(batch, topic, partition=partition), in_batch))
    acked = await asyncio.gather(*(future for future, _ in sent))
    metadata: list[RecordMetadata] = [None] * len(messages)  # type: ignore[list-item]  # every slot is set below
    for batch_metadata, (_, indices) in zip(acked, sent, strict=True):
        # aiokafka's RecordMetadata (Faust's type names six of its seven fields), built whole: twice as
        # fast as _replace, which was 1.7 % of a worker's CPU
        topic, partition, tp, first, *rest = batch_metadata
        of_message = type(batch_metadata)
        for position, index in enumerate(indices):
            metadata[index] = of_message(topic, partition, tp, first + position, *rest)  # type: ignore[arg-type]
    return metadata


@functools.lru_cache(maxsize=8_192)
def key_hash(key: bytes) -> int:
    """How aiokafka's ``DefaultPartitioner`` hashes ``key`` (its index into the topic's partitions,
    modulo their number). Its murmur2 is pure Python, 1.9 % of a worker's CPU; a record's id is
    hashed at every stage its change passes, so its hash is kept for the next few."""
    return int(murmur2(key)) & 0x7FFFFFFF


def fail_stop(stage: str, exc: BaseException) -> None:
    """Stop the worker at once, committing nothing more.

    Faust acknowledges a batch when its agent raises, so an exception that leaves a stage would lose
    the batch. Exiting the process without the normal shutdown (which commits acknowledged offsets)
    means the batch is read again by whichever worker takes over its partitions.
    """
    log.critical("stage failed; stopping the worker without committing", stage=stage,
                 error_class=type(exc).__name__, error=str(exc))
    os._exit(EXIT_PRODUCE_FAILED)
