"""Producing a stage's outputs (``pipeline.kafka.producing.produce_all``) on a real broker: every
message lands where a plain send would put it, in order, and the metadata returned for each is
where it really is (``table_rows`` records changelog offsets from it)."""

from __future__ import annotations

import uuid
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.kafka.producing import Outgoing, produce_all
from pipeline.kafka.topics import TopicCatalog

pytestmark = pytest.mark.kafka


async def test_every_message_is_where_its_metadata_says_in_order_on_the_partition_a_send_picks(
    kafka_bootstrap: str, catalog: TopicCatalog, tmp_path: Path
) -> None:
    big = b"x" * 20_000  # larger than a record batch (16 KiB): one partition's messages span several
    messages = [
        Outgoing(catalog.outcomes, b"r1", b"first"),
        Outgoing(catalog.dlq, b"r2", b"letter", headers=[("contactsync.stage", b"dispatch")]),
        Outgoing(catalog.outcomes, b"r1", big),
        Outgoing(catalog.outcomes, b"r1", big + b"2"),
        Outgoing(catalog.last_known_changelog, b"r3", None, partition=5),  # a changelog tombstone
        Outgoing(catalog.outcomes, b"r1", b"last"),
        *(Outgoing(catalog.outcomes, f"k{i}".encode(), f"v{i}".encode()) for i in range(40)),
    ]
    app = faust.App(f"produce-{uuid.uuid4().hex[:8]}", broker=f"contactsync://{kafka_bootstrap}",
                    store="memory://", datadir=str(tmp_path), web_enabled=False, producer_acks=-1)
    await app.producer.start()
    try:
        metadata = await produce_all(app, messages)
    finally:
        await app.producer.stop()

    assert len(metadata) == len(messages)
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await reader.start()
    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await plain.start()
    try:
        for message, meta in zip(messages, metadata, strict=True):
            assert meta.topic == message.topic
            if message.partition is None:  # where the producer's own partitioner puts the key
                assert meta.partition == (await plain.send_and_wait(catalog.cdc, b"probe", key=message.key)).partition
            else:
                assert meta.partition == message.partition
            partition = TopicPartition(meta.topic, meta.partition)
            reader.assign([partition])
            reader.seek(partition, meta.offset)
            [record] = (await reader.getmany(partition, timeout_ms=5000, max_records=1))[partition]
            assert (record.key, record.value, list(record.headers)) == (message.key, message.value, message.headers)
        r1 = [meta.offset for message, meta in zip(messages, metadata, strict=True) if message.key == b"r1"]
        assert r1 == sorted(r1) and len(set(r1)) == 4  # one partition, in the order given
    finally:
        await plain.stop()
        await reader.stop()
