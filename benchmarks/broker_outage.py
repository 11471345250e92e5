"""Log volume while the broker is away: workers with the simulators, the broker stopped for
``outage_s`` and started again on the same ports and data.

Reports, per worker, the lines its log got while the broker was away (from the stop to the broker
answering again) and in the ``after_s`` that follow, by level, with the messages repeated most (digits
masked); then publishes more changes and checks that every change from before and after the outage
reached its providers (lost, stale, missing outcomes). Needs a broker of its own: not with
KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.changes import ExpectedOutcomes
from benchmarks.cli import run_alone
from benchmarks.harness import Bench, pipeline_run, simulators_config
from benchmarks.report import emit
from pipeline.dev.cdc_generator import generate_events
from pipeline.dev.cdc_publisher import publish

_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Options:
    outage_s: float = 60.0
    after_s: float = 60.0
    workers: int = 1
    changes: int = 2000
    records: int = 500
    seed: int = 5
    timeout_s: float = 600.0


async def run(bench: Bench, options: Options) -> None:
    if bench.broker is None:
        raise SystemExit("broker_outage stops and starts the broker: run it without KAFKA_BOOTSTRAP_SERVERS")
    events = list(generate_events(options.changes, records=options.records, seed=options.seed))
    half = len(events) // 2
    expected = ExpectedOutcomes()
    before = set(expected.add(events[:half]))
    async with pipeline_run(bench, "outage", simulators_config(), {}) as pipeline:
        await pipeline.start_workers(options.workers)
        await publish(events[:half], bench.bootstrap, pipeline.catalog.cdc)
        await pipeline.settle(events[:half], before, options.timeout_s)
        logs = [worker.log_file for worker in pipeline.workers]
        marks = [_sizes(logs)]
        stopped = time.monotonic()
        await asyncio.to_thread(bench.broker.stop)
        await asyncio.sleep(options.outage_s)
        await asyncio.to_thread(bench.broker.start)
        marks.append(_sizes(logs))
        away_s = time.monotonic() - stopped  # the outage plus the broker's stop and start
        await asyncio.sleep(options.after_s)
        marks.append(_sizes(logs))
        running = all(worker.running for worker in pipeline.workers)
        await publish(events[half:], bench.bootstrap, pipeline.catalog.cdc)
        processed = await pipeline.settle(events, expected.add(events[half:]), options.timeout_s)
    emit("broker_outage", vars(options), {
        "workers_survived": running,
        "during_outage": [_lines(log, marks[0][i], marks[1][i]) for i, log in enumerate(logs)],
        "after_outage": [_lines(log, marks[1][i], marks[2][i]) for i, log in enumerate(logs)],
        "broker_away_s": round(away_s, 1),
        "missing_outcomes": processed.missing, "lost": processed.lost, "stale": processed.stale,
        "uncommitted": processed.uncommitted,
    }, bench.environment())


def _sizes(logs: list[Path]) -> list[int]:
    return [log.stat().st_size for log in logs]


def _lines(log: Path, start: int, end: int) -> dict[str, Any]:
    """The lines of ``log`` between two byte offsets: how many, by level, and the most repeated."""
    with log.open("rb") as file:
        file.seek(start)
        text = file.read(end - start).decode(errors="replace")
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    lines = text.splitlines()
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            levels["(not json)"] += 1
            continue
        levels[record.get("level", "?")] += 1
        messages[_DIGITS.sub("#", str(record.get("event", "")))[:90]] += 1
    return {"lines": len(lines), "levels": dict(levels), "top": messages.most_common(8)}


if __name__ == "__main__":
    run_alone("broker_outage", Options, run, __doc__ or "")
