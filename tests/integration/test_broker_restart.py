"""Commands through a broker restart: ``contactsync produce`` and ``backfill`` wait for the broker and
lose, repeat and reorder nothing; past the retry deadline produce gives up in one line.

Each test stops and starts the session's broker, which only the local broker of the test harness
allows (tests/kafka_harness.py); against another broker they are skipped, saying why.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.dev.cdc_generator import generate_events
from pipeline.dev.local_stack import read_topic
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.backfill.from_file import FileRows
from pipeline.ops.backfill.publish import BackfillState
from pipeline.stages.source_mapping import IDENTITY
from tests.cli_runner import CONTACTSYNC, cli_env
from tests.kafka_harness import SessionBroker

pytestmark = pytest.mark.kafka

WAITING = "Kafka acknowledges nothing; still trying"
BACK = "Kafka acknowledges again"
TIMES = re.compile(rb"\d{12,}")
LSN = re.compile(rb'"lsn":(\d+)')


async def through_outage(
    broker: SessionBroker, catalog: TopicCatalog, args: list[str], *, after_s: float, down_s: float,
    **env: str,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``contactsync ARGS``; ``after_s`` into it, stop the broker for ``down_s``; the finished
    command and how long the broker was away."""
    environment = cli_env(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=catalog.prefix,
                          **env)
    process = await asyncio.create_subprocess_exec(
        CONTACTSYNC, *args, env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    output = asyncio.ensure_future(process.communicate())
    await asyncio.sleep(after_s)
    assert process.returncode is None, f"{args[0]} ended before the outage; make it longer"
    away_s = await broker.outage(down_s)
    stdout, stderr = await asyncio.wait_for(output, timeout=240)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, stdout.decode(), stderr.decode()), away_s


def without_times(value: bytes | None) -> bytes | None:
    """A generated message with its clock readings (times, and LSNs made from them) masked."""
    return None if value is None else TIMES.sub(b"#", value)


def log_events(stderr: str) -> list[str]:
    return [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.timeout(300)
async def test_produce_rides_out_a_broker_restart_in_order(restartable_broker: SessionBroker, catalog: TopicCatalog) -> None:
    """2,500 messages at 100/s with the broker stopped for 15 s in the middle: the command waits,
    says so in a few lines, and ends with every message on the topic exactly once, each key's in
    the order generated."""
    args = ["produce", "--count", "2500", "--records", "300", "--rate", "100", "--seed", "23"]
    done, away_s = await through_outage(restartable_broker, catalog, args, after_s=6, down_s=15)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("sent 2500 messages"), done.stdout
    events = log_events(done.stderr)
    assert WAITING in events and BACK in events, events
    assert len(done.stderr.splitlines()) < 40, f"{len(done.stderr.splitlines())} lines on stderr:\n{done.stderr[:3000]}"

    expected = defaultdict(list)  # the same seed makes the same changes, but the clock stamps them anew
    for event in generate_events(2500, records=300, seed=23):
        expected[event.key].append(without_times(event.value))
    written = defaultdict(list)
    lsns = defaultdict(list)
    for message in await read_topic(restartable_broker.bootstrap, catalog.cdc):
        written[message.key].append(without_times(message.value))
        lsns[message.key] += LSN.findall(message.value or b"")
    assert sum(map(len, written.values())) == 2500
    assert written == expected
    assert any(lsns.values()) and all(int(a) < int(b) for v in lsns.values() for a, b in itertools.pairwise(v))
    print(f"broker away {away_s:.1f}s; produce stderr: {len(done.stderr.splitlines())} lines: {events}")


@pytest.mark.timeout(300)
async def test_produce_gives_up_in_one_line_past_the_retry_deadline(
    restartable_broker: SessionBroker, catalog: TopicCatalog
) -> None:
    """With CONTACTSYNC_KAFKA__RETRY_DEADLINE_S=6 and the broker away for 12 s, produce stops with
    exit code 2 and one line saying what happened and which setting waits longer; no traceback."""
    args = ["produce", "--count", "3000", "--rate", "100", "--seed", "5"]
    done, _ = await through_outage(
        restartable_broker, catalog, args, after_s=5, down_s=12, CONTACTSYNC_KAFKA__RETRY_DEADLINE_S="6"
    )

    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.splitlines()[-1]
    assert last.startswith("contactsync: Kafka at ") and "acknowledged nothing for 6s" in last, last
    assert "CONTACTSYNC_KAFKA__RETRY_DEADLINE_S" in last
    assert "Traceback" not in done.stderr
    assert WAITING in log_events(done.stderr)


@pytest.mark.timeout(300)
async def test_backfill_rides_out_a_broker_restart(
    restartable_broker: SessionBroker, catalog: TopicCatalog, tmp_path: Path
) -> None:
    """A 2,500-row snapshot file at 100 rows/s with the broker stopped for 15 s in the middle: the
    backfill waits and finishes, every row sent exactly once, and its progress says all were done."""
    rows = tmp_path / "contacts.jsonl"
    rows.write_text("".join(json.dumps({"id": n, "email": f"p{n}@example.com"}) + "\n" for n in range(1, 2501)))
    args = ["backfill", "--from", str(rows), "--rate", "100"]
    done, _ = await through_outage(restartable_broker, catalog, args, after_s=6, down_s=15)

    assert done.returncode == 0, done.stderr[-3000:]
    assert WAITING in log_events(done.stderr)
    keys = sorted(int(message.key) for message in await read_topic(restartable_broker.bootstrap, catalog.cdc))
    assert keys == list(range(1, 2501))
    assert BackfillState.model_validate_json(FileRows(rows, IDENTITY).state_file.read_text()).rows_done == 2500
