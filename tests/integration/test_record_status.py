"""`contactsync status` without a worker (``status_from_changelog``) on a real broker: a record's
rows, one per provider and writing stage, merged from the newest message of each in the
record-status changelog, with a row written before the rows were split per writer."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.kafka.key_lookup import key_partition
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.record_status import status_from_changelog
from pipeline.stages.status import status_key
from schemas.dispatch import DeliveryState
from schemas.status import ProviderStatus, RecordStatus

pytestmark = pytest.mark.kafka


def entry(state: DeliveryState, version: int, at_ms: int, provider_id: str | None = None) -> bytes:
    row = ProviderStatus(state=state, version=version, attempts=1, at_ms=at_ms, provider_id=provider_id)
    return row.model_dump_json().encode()


async def test_the_status_merges_the_newest_of_each_row_of_the_record_and_its_old_row(
    kafka_bootstrap: str, catalog: TopicCatalog
) -> None:
    """The old row's Mailchimp entry still shows, HubSpot shows the dispatcher's newest entry
    (delivered v4 over its own earlier retrying v4 and the old row's v3), a deleted row and a row
    of another record in the same partition count for nothing; an unknown record has no status."""
    changelog, partition = catalog.record_status_changelog, key_partition(b"r1", catalog.partitions)
    old = RecordStatus(providers={
        "hubspot": ProviderStatus(state="delivered", version=3, attempts=1, at_ms=10, provider_id="h-3"),
        "mailchimp": ProviderStatus(state="skipped_by_rule", version=3, attempts=0, at_ms=10),
    })
    rows = [
        (b"r1", old.model_dump_json().encode()),
        (status_key("r1", "hubspot", "dispatch"), entry("retrying", 4, 20)),
        (status_key("r1", "hubspot", "route"), entry("dead_lettered", 9, 25)),
        (status_key("r1", "hubspot", "route"), None),  # deleted
        (status_key("r1", "hubspot", "dispatch"), entry("delivered", 4, 30)),
        (status_key("r10", "hubspot", "dispatch"), entry("delivered", 8, 40)),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in rows:
            await producer.send_and_wait(changelog, value, key=key, partition=partition)
    finally:
        await producer.stop()

    found = await status_from_changelog(kafka_bootstrap, changelog, catalog.providers, catalog.partitions, "r1")
    unknown = await status_from_changelog(kafka_bootstrap, changelog, catalog.providers, catalog.partitions, "r2")

    assert found is not None and unknown is None
    shown = {name: (row.state, row.version, row.provider_id) for name, row in found.providers.items()}
    assert shown == {"hubspot": ("delivered", 4, "h-3"), "mailchimp": ("skipped_by_rule", 3, None)}
