"""Backlog drain: a backlog of changes is on contacts.cdc before the workers start; how long until
every change has reached its terminal outcome at every provider?

Simulators without latency or limits, lanes not rate limited. ``drain_s`` runs from starting the
worker processes (start-up and the first rebalance included) to the last provider ack;
``changes_per_s`` is the backlog over the time from the first validated message to the last ack.
The default backlog keeps ``make bench`` short on a 2-core machine; ``--backlog 200000`` (or
1000000) is the full-size run, with a few minutes of preparation (making and counting the changes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from benchmarks.changes import make_changes
from benchmarks.cli import run_alone
from benchmarks.harness import Bench, pipeline_run, simulators_config, unlimited_env
from benchmarks.procstat import sample_processes
from benchmarks.report import Results, emit, medians_of
from pipeline.dev.cdc_publisher import publish


@dataclass(frozen=True)
class Options:
    backlog: int = 20_000
    records: int = 10_000
    workers: int = 2
    runs: int = 1
    seed: int = 11
    timeout_s: float = 7200.0


async def run(bench: Bench, options: Options) -> Results:
    env = bench.environment()
    events, expected = make_changes(options.backlog, options.records, options.seed)
    runs: list[dict[str, Any]] = []
    for _ in range(options.runs):
        async with pipeline_run(bench, "drain", simulators_config(), unlimited_env()) as pipeline:
            await publish(events, bench.bootstrap, pipeline.catalog.cdc)
            started_ms = int(time.time() * 1000)
            await pipeline.start_workers(options.workers)
            async with sample_processes(pipeline.pids()) as processes:
                processed = await pipeline.settle(events, expected, options.timeout_s)
            runs.append({
                "drain_s": round((processed.last_ms - started_ms) / 1000, 1),
                **processed.summary(len(events)),
                "rss_mb": processes.memory(processed.first_ms, processed.last_ms),
            })  # fmt: skip
    return {"drain": emit("drain", vars(options), {**medians_of(runs), "runs": runs}, env)}


if __name__ == "__main__":
    run_alone("drain", Options, run, __doc__ or "")
