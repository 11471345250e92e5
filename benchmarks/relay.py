"""The throughput baseline: a bare aiokafka relay over four hops, cdc → t1 → t2 → t3 → t4.

Each hop consumes a batch, produces it unchanged to the next topic (acks=all), waits for the
acknowledgements and commits, as a pipeline stage does, but with no decoding, no tables and no HTTP.
It runs in a child process of its own (``python -m benchmarks.relay BOOTSTRAP GROUP TOPIC...``), as a
worker does, on topics of the same partition count as the pipeline's.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.harness import Bench, topic_partitions
from benchmarks.offsets import delete_topics, edge_timestamps, end_offsets
from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.local_stack import wait_until_consuming

HOPS = 4
MAX_POLL_RECORDS = 500  # as the workers' broker_max_poll_records


async def relay(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Forward ``topics[i]`` to ``topics[i + 1]`` for every hop, until cancelled."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    consumers = [
        AIOKafkaConsumer(
            source, bootstrap_servers=bootstrap, group_id=f"{group}-hop{index}", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=MAX_POLL_RECORDS,
        )
        for index, source in enumerate(topics[:-1])
    ]  # fmt: skip
    try:
        for consumer in consumers:
            await consumer.start()
        await asyncio.gather(*(_hop(c, producer, target) for c, target in zip(consumers, topics[1:], strict=True)))
    finally:
        for consumer in consumers:
            await consumer.stop()
        await producer.stop()


async def _hop(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, target: str) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        sends = [await producer.send(target, r.value, key=r.key) for records in batches.values() for r in records]
        await asyncio.gather(*sends)
        if sends:
            await consumer.commit()


@contextlib.contextmanager
def relay_process(bootstrap: str, group: str, topics: Sequence[str]) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "benchmarks.relay", bootstrap, group, *topics]
    process = subprocess.Popen(command)  # noqa: S603
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def relay_throughput(bench: Bench, events: Sequence[GeneratedEvent], timeout_s: float) -> float:
    """Messages per second through the relay: first message on t1 to last message on t4."""
    run_id, partitions = uuid.uuid4().hex[:8], topic_partitions()
    topics = [f"bench-relay-{run_id}.{name}" for name in ("cdc", "t1", "t2", "t3", "t4")]
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1) for topic in topics])
    finally:
        await admin.close()
    group = f"bench-relay-{run_id}"
    try:
        with relay_process(bench.bootstrap, group, topics):
            for hop in range(HOPS):
                if not await wait_until_consuming(bench.bootstrap, f"{group}-hop{hop}", 1, timeout_s=60):
                    raise RuntimeError(f"relay hop {hop} did not join its group")
            await publish(events, bench.bootstrap, topics[0])
            await _wait_for(bench.bootstrap, topics[-1], partitions, len(events), timeout_s)
        first_ms, _ = await edge_timestamps(bench.bootstrap, topics[1], partitions)
        _, last_ms = await edge_timestamps(bench.bootstrap, topics[-1], partitions)
        return len(events) / ((last_ms - first_ms) / 1000)
    finally:
        await delete_topics(bench.bootstrap, topics)


async def _wait_for(bootstrap: str, topic: str, partitions: int, count: int, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while sum((await end_offsets(bootstrap, [topic], partitions)).values()) < count:
        if loop.time() > deadline:
            raise RuntimeError(f"the relay did not deliver {count} messages to {topic} in {timeout_s} s")
        await asyncio.sleep(0.2)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(relay(sys.argv[1], sys.argv[2], sys.argv[3:]))
