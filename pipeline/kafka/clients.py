"""Short-lived Kafka clients for commands and views: connected, or one ConfigError line saying where.

``admin_client`` for topics, groups and offsets; ``groupless_consumer`` (a consumer in no group) for
end offsets and for reading partitions assigned by hand (``read_to_end``); ``group_consumer`` for a
command that consumes as a member of its own group and commits by hand; ``acked_producer``, which
rides out a broker restart.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from pipeline.errors import ConfigError
from pipeline.kafka.patient_producer import PatientProducer, request_timeout_ms

__all__ = ["acked_producer", "admin_client", "group_consumer", "groupless_consumer", "read_to_end"]

C = TypeVar("C")


def admin_client(bootstrap: str, client_id: str) -> AbstractAsyncContextManager[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    return _running(admin, bootstrap, admin.start, admin.close)


def groupless_consumer(
    bootstrap: str, client_id: str, **options: Any
) -> AbstractAsyncContextManager[AIOKafkaConsumer]:
    """A consumer that joins no group: it reads what it is assigned and commits nothing unless told to
    (given a ``group_id``, a commit sets that group's offsets, which Kafka allows while it is empty)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id=client_id, enable_auto_commit=False, **options
    )
    return _running(consumer, bootstrap, consumer.start, consumer.stop)


def group_consumer(
    bootstrap: str, client_id: str, group_id: str, *topics: str
) -> AbstractAsyncContextManager[AIOKafkaConsumer]:
    """A member of ``group_id`` reading ``topics`` from the group's committed offsets (from the start
    when it has none) that commits only what it is told to commit."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, client_id=client_id, group_id=group_id,
        enable_auto_commit=False, auto_offset_reset="earliest",
    )
    return _running(consumer, bootstrap, consumer.start, consumer.stop)


def acked_producer(
    bootstrap: str, client_id: str, retry_deadline_s: float, **options: Any
) -> AbstractAsyncContextManager[PatientProducer]:
    """A producer whose sends are done once every in-sync replica has them (one key stays in order),
    waiting out a broker that goes away for up to ``retry_deadline_s`` (``pipeline.kafka.patient_producer``)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id=client_id, acks="all", enable_idempotence=True,
        request_timeout_ms=request_timeout_ms(retry_deadline_s), **options,
    )
    patient = PatientProducer(producer, bootstrap, retry_deadline_s)
    return _running(patient, bootstrap, producer.start, patient.stop)


async def read_to_end(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``partitions`` (assigned to ``consumer`` here) from the log start up to the end
    offsets as they are now, in offset order per partition."""
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    for tp, start in (await consumer.beginning_offsets(partitions)).items():
        consumer.seek(tp, start)  # seek_to_beginning may lose to the reset that assign() started
    remaining = partitions
    while remaining := [tp for tp in remaining if await consumer.position(tp) < ends[tp]]:
        batches = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record


@asynccontextmanager
async def _running(
    client: C, bootstrap: str, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> AsyncIterator[C]:
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)  # it logs every refused connection; we say it once
    try:
        await start()
    except KafkaError:
        await stop()
        raise ConfigError(
            f"cannot reach Kafka at {bootstrap}: run `contactsync kafka start` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    finally:
        aiokafka_log.setLevel(level)
    try:
        yield client
    finally:
        await stop()
