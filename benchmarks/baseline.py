"""Timing a baseline relay the way the pipeline is timed.

A baseline (``benchmarks.relay``: bare aiokafka; ``benchmarks.faust_relay``: four Faust agents)
forwards the changes unchanged over four hops, cdc → t1 → t2 → t3 → t4, in a child process of its
own, as a worker is one. Every change is on its input topic before the child starts, so no publisher
bounds it (the pipeline's publisher outruns the pipeline, so its input never runs dry either), and
the child joins its consumer groups before it forwards anything. The window runs from the first
message on t1 (the first hop's output) to the last message on t4 (the last hop's), as the
pipeline's runs from the first message on contacts.validated to the last provider ack: start-up and
group joins are outside both. CPU is the child's user + system time from ``/proc`` over the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.harness import Bench, topic_partitions
from benchmarks.offsets import delete_topics, edge_timestamps
from benchmarks.procstat import sample_processes
from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.dev.cdc_publisher import publish

HOPS = ("cdc", "t1", "t2", "t3", "t4")
SAMPLE_EVERY_S = 0.05  # a baseline's window lasts a second or two
STOP_WAIT_S = 10.0

# (bootstrap, group or app id, topics in hop order) -> the child's command line
Command = Callable[[str, str, Sequence[str]], list[str]]


async def time_baseline(
    bench: Bench, name: str, command: Command, events: Sequence[GeneratedEvent], timeout_s: float
) -> dict[str, Any]:
    """Changes/s and CPU ms per change of one baseline run over ``events``."""
    prefix, partitions = f"bench-{name.replace('_', '-')}-{uuid.uuid4().hex[:8]}", topic_partitions()
    topics = [f"{prefix}.{hop}" for hop in HOPS]
    await _create_topics(bench.bootstrap, topics, partitions)
    try:
        await publish(events, bench.bootstrap, topics[0])
        bench.work_dir.mkdir(parents=True, exist_ok=True)
        log_file = bench.work_dir / f"{prefix}.log"
        with _child(command(bench.bootstrap, prefix, topics), log_file) as child:
            async with sample_processes({name: child.pid}, every_s=SAMPLE_EVERY_S) as samples:
                await _wait_for(bench.bootstrap, topics[-1], partitions, len(events), timeout_s, child, log_file)
        first_ms, _ = await edge_timestamps(bench.bootstrap, topics[1], partitions)
        _, last_ms = await edge_timestamps(bench.bootstrap, topics[-1], partitions)
    finally:
        await delete_topics(bench.bootstrap, topics)
    seconds = (last_ms - first_ms) / 1000
    cpu_s = samples.cpu_seconds(first_ms, last_ms)[name]
    return {
        "changes_per_s": round(len(events) / seconds, 1),
        "seconds": round(seconds, 2),
        "cpu_ms_per_change": round(1000 * cpu_s / len(events), 3),
        "cpu_cores": round(cpu_s / seconds, 2),
    }


async def _create_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1) for topic in topics])
    finally:
        await admin.close()


@contextlib.contextmanager
def _child(command: list[str], log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The baseline's process, its output in ``log_file``; interrupted (then killed) when done."""
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _wait_for(
    bootstrap: str,
    topic: str,
    partitions: int,
    count: int,
    timeout_s: float,
    child: subprocess.Popen[bytes],
    log_file: Path,
) -> None:
    """Until ``topic`` holds ``count`` messages (one client, asked every 0.1 s)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        ends = [TopicPartition(topic, partition) for partition in range(partitions)]
        while sum((await consumer.end_offsets(ends)).values()) < count:
            if child.poll() is not None:
                raise RuntimeError(f"the baseline exited with {child.returncode}; see {log_file}")
            if loop.time() > deadline:
                raise RuntimeError(f"the baseline did not deliver {count} messages to {topic} in {timeout_s} s")
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
