"""The bare baseline: an aiokafka relay over four hops, cdc → t1 → t2 → t3 → t4.

Each hop consumes a batch, produces it unchanged to the next topic (acks=all), waits for the
acknowledgements and commits, as a pipeline stage does, but with no decoding, no tables and no HTTP.
No hop forwards anything before every hop's group has its partitions, so the joins stay outside the
timed window. It runs in a child process (``python -m benchmarks.relay BOOTSTRAP GROUP TOPIC...``),
timed by ``benchmarks.baseline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

MAX_POLL_RECORDS = 500  # as the workers' broker_max_poll_records
JOIN_POLL_S = 0.05


def command(bootstrap: str, group: str, topics: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.relay", bootstrap, group, *topics]


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
        while not all(consumer.assignment() for consumer in consumers):
            await asyncio.sleep(JOIN_POLL_S)
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


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(relay(sys.argv[1], sys.argv[2], sys.argv[3:]))
