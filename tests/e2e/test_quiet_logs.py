"""A worker's log under trouble: nothing at ERROR while it is healthy, and tens of lines, not
thousands, while the broker is away."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from pipeline.dev.cdc_generator import generate_events
from pipeline.dev.local_stack import wait_until_consuming
from tests.kafka_harness import SessionBroker

# Faust reads this variable: its livelock check then speaks up after 4 s instead of 5 minutes.
FAST_LIVELOCK_CHECK = {"STREAM_PROCESSING_TIMEOUT": "4"}


def lines_from(log: Path, offset: int) -> list[dict[str, object]]:
    with log.open("rb") as file:
        file.seek(offset)
        return [json.loads(line) for line in file.read().decode().splitlines() if line.startswith("{")]


@pytest.mark.timeout(300)
async def test_a_healthy_idle_worker_logs_no_error(pipeline) -> None:
    """After its changes are delivered, a worker left idle past Faust's livelock timeout logs no
    ERROR: its table changelogs, written by the stages and read by no stream, are not taken for
    stalled streams ("Stream has not started processing")."""
    harness, exits = pipeline
    await harness.start(exits, env=FAST_LIVELOCK_CHECK)
    events = list(generate_events(300, records=100, seed=3))
    await harness.publish(events)
    verdict = await harness.settle(events)
    assert (verdict.lost, verdict.stale) == ([], [])
    log = harness.workers[0].log_file
    idle_from = log.stat().st_size
    # Four rounds of the livelock check, every 2.5 s: it names a partition it takes for stalled at
    # every round once that partition's stream has been idle 4 s (changelogs: since the worker started).
    await asyncio.sleep(10)

    errors = [line for line in lines_from(log, idle_from) if line["level"] in ("error", "critical")]
    assert errors == [], errors[:3]


@pytest.mark.timeout(400)
async def test_a_broker_outage_writes_tens_of_lines_not_thousands(pipeline, restartable_broker: SessionBroker) -> None:
    """While the broker is stopped for 30 s (and until it answers again), the worker's log gets a
    few lines per distinct complaint, each carrying how many were held back; the worker stays up and
    delivers what is published after."""
    harness, exits = pipeline
    await harness.start(exits)
    log = harness.workers[0].log_file
    away_from = log.stat().st_size
    away_s = await restartable_broker.outage(30)
    during = lines_from(log, away_from)

    assert harness.workers[0].running, harness.logs()
    assert len(during) < 100, Counter(str(line["event"])[:60] for line in during).most_common(10)
    assert any("repeated" in line for line in during), during
    assert await wait_until_consuming(harness.bootstrap, harness.app_id, 1, 120), harness.logs()
    events = list(generate_events(200, records=100, seed=4))
    await harness.publish(events)
    verdict = await harness.settle(events)
    assert (verdict.lost, verdict.stale) == ([], [])
    print(f"broker away {away_s:.0f}s: {len(during)} worker log lines,",
          Counter(str(line["event"])[:50] for line in during).most_common(8))
