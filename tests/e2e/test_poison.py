"""Messages that used to stop workers (issue #10), on the real broker with two workers: none stops a
stage any more, and a message that does make workers stop is dead-lettered as worker_fault."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from aiokafka import ConsumerRecord

from pipeline.dev.cdc_generator import Kind, generate_events
from pipeline.dev.local_stack import read_topic
from schemas.dead_letter import DeadLetter
from schemas.fault import WorkerStops
from schemas.headers import from_headers
from tests.cli_runner import run_cli
from tests.e2e.conftest import Pipeline, new_pipeline
from tests.e2e.crafted import RANDOM_BYTES, hostile_sample, plain_upsert, poison_messages

pytestmark = pytest.mark.kafka

STOPPED = "stage failed; stopping the worker without committing"  # producing.fail_stop's line
# What each poison message is dead-lettered with (the catch-all of pipeline.kafka.stage_loop: the error as raised).
TOO_LONG = r"invalid event: {field}: String should have at most 1000 characters"
REASONS = {  # what the event limits (pipeline/stages/event_limits.py, schemas/cdc.py) say of each
    "deep_json": ("InvalidEventError", r"nesting deeper than 64 levels"),
    "huge_integer": ("InvalidEventError", r"a number with more than 100 digits in seq"),
    "huge_integer_in_source_file": ("InvalidEventError", TOO_LONG.format(field="source.file")),
    "deep_sequence": ("InvalidEventError", TOO_LONG.format(field="source.sequence")),
    "lone_surrogate": ("InvalidEventError", r"invalid event: data\.first_name: Value error, holds a lone surrogate \(U\+D800\)"),
    "huge_first_name": ("InvalidEventError", r"message of 1,000,\d{3} bytes is larger than the limit of 1,000,000 bytes"),
    "random_bytes": ("InvalidEventError", r"message of 1,048,401 bytes is larger than the limit of 1,000,000 bytes"),
}
TOO_LARGE_TO_KEEP = {"huge_first_name", "random_bytes"}


def stops_logged(harness: Pipeline) -> list[int]:
    """How many times each worker stopped, from its log."""
    return [worker.log_file.read_text(errors="replace").count(STOPPED) for worker in harness.workers]


@pytest.mark.timeout(600)
async def test_poison_among_valid_changes_is_dead_lettered_and_no_worker_stops(pipeline) -> None:
    """Each poison message and a sample of 150 hostile ones, mixed with valid changes on two workers,
    is in the DLQ with its reason (a reference for those too large to keep whole); every valid change
    is delivered; both workers are still running and never stopped; every stage committed to its end."""
    harness, exits = pipeline
    await harness.start(exits, workers=2)
    poison = poison_messages("pm")
    hostile = hostile_sample("hs", 150)  # a sample of the fuzz test's categories, each one refused
    valid = list(generate_events(300, records=60, seed=23))
    events = (valid[:100] + list(poison.values())[:4] + hostile[:75] + valid[100:200] + list(poison.values())[4:]
              + hostile[75:] + valid[200:])
    await harness.publish(events)

    verdict = await harness.settle(events, timeout_s=240)
    report = await harness.settled_lag()

    assert (verdict.lost, verdict.stale) == ([], []), (verdict.lost[:3], verdict.stale[:3], harness.logs())
    assert verdict.matched + verdict.dead_lettered == verdict.expected and verdict.matched > 40
    assert report.lag == 0, (report.to_json(), harness.logs())
    assert all(worker.running for worker in harness.workers), harness.logs()
    assert stops_logged(harness) == [0, 0], harness.logs()
    letters = {m.key: (m, from_headers(DeadLetter, m.headers)) for m in await harness.messages(harness.catalog.dlq)}
    for name, event in poison.items():
        message, story = letters[event.key]
        print(f"{name}: {story.error_class}: {story.error_message}")  # the reasons, for the record
        error_class, reason = REASONS[name]
        assert (story.stage, story.original_topic, story.error_class) == ("validate", harness.catalog.cdc, error_class)
        assert re.fullmatch(reason, story.error_message), (name, story.error_message)
        assert story.is_reference is (name in TOO_LARGE_TO_KEEP)
        assert message.value == (event.value[:1024] if story.is_reference else event.value)
    assert letters[poison["random_bytes"].key][1].original_size == RANDOM_BYTES
    for event in hostile:
        story = letters[event.key][1]
        assert (story.stage, story.error_class) == ("validate", "InvalidEventError") and story.error_message, event.key
    await reference_letters_are_shown_but_never_replayed(harness, letters[poison["random_bytes"].key][0])


async def reference_letters_are_shown_but_never_replayed(harness: Pipeline, message: ConsumerRecord) -> None:
    """`dlq list` and `dlq show` say what a reference letter is; `dlq replay` refuses it in one line."""
    env, ref = harness.cli_env(), f"{message.partition}:{message.offset}"

    cdc_before = len(await harness.messages(harness.catalog.cdc))
    listed = run_cli(env, "dlq", "list", ref)
    shown = run_cli(env, "dlq", "show", ref)
    replayed = run_cli(env, "dlq", "replay", ref)

    assert f"[reference to {RANDOM_BYTES} bytes] message of 1,048,401 bytes" in listed.stdout, listed.stdout
    story = from_headers(DeadLetter, message.headers)
    assert (f"value: not kept, {RANDOM_BYTES} bytes were too large to dead-letter whole (sha256 "
            f"{story.original_sha256}); the original is at {harness.catalog.cdc} partition "
            f"{story.original_partition} offset {story.original_offset} while retention keeps it") in shown.stdout
    assert "first 1024 bytes:" in shown.stdout.splitlines()
    assert (replayed.returncode, replayed.stdout) == (2, "")
    assert replayed.stderr == (f"contactsync: nothing to replay: {ref} is a reference to a message too large to "
                               "dead-letter whole, holding only its first bytes (see `contactsync dlq show`)\n")
    assert len(await harness.messages(harness.catalog.cdc)) == cdc_before  # nothing was sent


async def supervise(harness: Pipeline, done: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Restart stopped workers, as a supervisor would, until ``done``; but only once all have stopped,
    so that a partition of a stopped worker first moves to the other one."""
    deadline = time.monotonic() + timeout_s
    while not await done():
        assert time.monotonic() < deadline, (stops_logged(harness), harness.logs())
        if not any(worker.running for worker in harness.workers):
            for worker in harness.workers:
                assert worker.process is not None and worker.process.returncode == 75, harness.logs()
                worker.start()
        await asyncio.sleep(1)


@pytest.mark.timeout(600)
async def test_a_message_that_keeps_stopping_workers_is_dead_lettered_as_worker_fault(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """contacts.validated refuses messages over 20 kB (a topic limit below the producer's), so a valid
    change with 20 kB of names (1,000 four-byte characters a field) makes the validate stage fail to produce: a fault of the worker, which stops.
    Counted across restarts and across both workers, after 3 stops it is dead-lettered as worker_fault,
    with an ERROR line and the metric, and its partition moves on: every other change is delivered."""
    harness = await new_pipeline(kafka_bootstrap, topic_prefix, tmp_path,
                                 configs={"contacts.validated": {"max.message.bytes": "20000"}})
    # Within the event limits (1,000 characters a field), but 4 bytes a character in UTF-8: over 20 kB.
    long_text = "\N{GRINNING FACE}" * 1000
    big = replace(plain_upsert("wf-big", first_name=long_text, last_name=long_text, company=long_text,
                               title=long_text, contact_type=long_text), kind=Kind.INVALID_JSON, version=None)
    valid = list(generate_events(200, records=50, seed=29))
    async with AsyncExitStack() as exits:
        try:
            await harness.start(exits, workers=2, env={"CONTACTSYNC_SESSION_TIMEOUT_S": "6"})
            await harness.publish(valid[:100] + [big] + valid[100:])

            async def dead_lettered() -> bool:
                return any(m.key == big.key for m in await read_topic(harness.bootstrap, harness.catalog.dlq))

            await supervise(harness, dead_lettered, timeout_s=400)
            verdict = await harness.settle(valid + [big], timeout_s=120)
            report = await harness.settled_lag()
            metrics = await worker_fault_metrics(harness)
        finally:
            await harness.stop()

    assert (verdict.lost, verdict.stale) == ([], []), (verdict.lost[:3], verdict.stale[:3], harness.logs())
    assert report.lag == 0, (report.to_json(), harness.logs())
    (letter,) = [from_headers(DeadLetter, m.headers) for m in await harness.messages(harness.catalog.dlq) if m.key == big.key]
    assert (letter.stage, letter.error_class, letter.attempts) == ("validate", "worker_fault", 3)
    assert letter.error_message.startswith("made a worker stop 3 times, the last at validate with MessageSizeTooLargeError")
    stops = stops_logged(harness)
    assert sum(stops) == 3 and min(stops) >= 1, stops  # on both workers
    logs = "".join(worker.log_file.read_text(errors="replace") for worker in harness.workers)
    assert logs.count("dead-lettered: this message kept stopping the worker") == 1
    assert metrics == 1
    newest = {m.key: m.value for m in await harness.messages(harness.catalog.faults)}
    culprit = newest[f"{letter.original_topic}:{letter.original_partition}:{letter.original_offset}".encode()]
    assert WorkerStops.model_validate_json(culprit).stops == 3


async def worker_fault_metrics(harness: Pipeline) -> float:
    """contactsync_worker_fault_letters_total{stage="validate"} added up over the running workers."""
    total = 0.0
    async with httpx.AsyncClient(timeout=30) as client:
        for worker in harness.workers:
            if worker.running:
                text = (await client.get(f"http://127.0.0.1:{worker.web_port}/metrics")).text
                found = re.search(r'^contactsync_worker_fault_letters_total\{stage="validate"\} (\S+)$', text, re.M)
                total += float(found[1]) if found else 0.0
    return total
