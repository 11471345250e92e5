"""One record's delivery status, found without knowing which worker owns it.

The record-status table's changelog is compacted and keyed like the stage topics, so the newest
row of a record is the last message with its key in the partition Kafka's default partitioner
(murmur2) gives that key. Or a worker answers ``GET /records/{id}``, routed to the key's owner.
"""

from __future__ import annotations

from typing import Any

import httpx
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from pipeline.errors import ConfigError
from pipeline.kafka_clients import groupless_consumer, read_to_end
from pipeline.topic_admin import require_topics
from schemas.status import RecordStatus


def status_document(record_id: str, status: RecordStatus) -> dict[str, Any]:
    """The JSON answer for one record: its id and, per provider, the newest thing that happened."""
    return {"record_id": record_id, **status.model_dump(mode="json")}


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's and aiokafka's) gives ``key``."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


async def status_from_changelog(bootstrap: str, changelog: str, partitions: int, record_id: str) -> RecordStatus | None:
    """The newest row of ``record_id`` in the table's changelog (None: no row, or deleted)."""
    await require_topics(bootstrap, changelog)
    key = record_id.encode()
    newest: bytes | None = None
    async with groupless_consumer(bootstrap, "contactsync-status") as consumer:
        async for message in read_to_end(consumer, [TopicPartition(changelog, key_partition(key, partitions))]):
            if message.key == key:
                newest = message.value
    return None if newest is None else RecordStatus.model_validate_json(newest)


async def status_from_worker(url: str, record_id: str) -> RecordStatus | None:
    """Ask a worker's web server (any worker: it forwards to the one that owns the record)."""
    address = f"{url.rstrip('/')}/records/{record_id}"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.get(address)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the worker at {url}: {exc}") from None
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        raise ConfigError(f"{address} answered {answer.status_code}: {answer.text[:200]}")
    document = answer.json()
    return RecordStatus.model_validate({"providers": document["providers"]})
