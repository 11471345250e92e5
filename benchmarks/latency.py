"""Latency from a change's source time to the provider's ack, at fixed offered loads.

Per run: fresh topics, simulators that answer after ``api_latency_ms`` (no limits), workers whose
lanes are not rate limited. After a small warm-up (connections, Salesforce token), each load is
offered for ``seconds`` at its rate; the next load starts once every outcome of the previous one
is in. Besides ``loads``, half of ``capacity`` (one worker's changes/s; ``make bench`` takes it
from its throughput run) is offered when it is given: latency below saturation, whatever the
machine. A load's events are made beforehand, each stamped with the time it is planned to be sent
(the publisher sends in chunks of a tenth of a second, and a chunk is stamped with its start), so
the benchmark process does no work of its own while the pipeline works. A late publisher makes the
latency look longer, never shorter. A load's latency is at_ms − source_ts_ms of its delivered
outcomes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.changes import ExpectedOutcomes
from benchmarks.cli import run_alone
from benchmarks.harness import Bench, PipelineRun, pipeline_run, simulators_config, unlimited_env
from benchmarks.report import Results, emit, medians_of, percentiles
from pipeline.dev.cdc_generator import GeneratedEvent, generate_events
from pipeline.dev.cdc_publisher import CHUNK, publish
from pipeline.kafka.pacing import chunk_size
from schemas.dispatch import Outcome

WARM_UP = (300, 150.0)  # changes, per second
PREPARE_S_PER_EVENT = 0.001  # making and counting one change takes about 0.6 ms here


@dataclass(frozen=True)
class Options:
    loads: tuple[int, ...] = (20, 100)  # offered changes per second
    capacity: float = 0.0  # one worker's changes/s (from the throughput benchmark): half of it is offered too
    seconds: float = 5.0  # how long each load is offered
    api_latency_ms: float = 50.0
    workers: int = 1
    records: int = 20_000
    runs: int = 3
    timeout_s: float = 300.0


class PlannedClock:
    """The clock a load's changes are made with: the start of the chunk each one is sent in."""

    def __init__(self, start: float, rate: float) -> None:
        self.start = start
        self.chunk = chunk_size(rate, CHUNK)  # as cdc_publisher.publish
        self.rate = rate
        self.made = 0

    def __call__(self) -> float:
        return self.start + (self.made // self.chunk) * self.chunk / self.rate


async def run(bench: Bench, options: Options) -> Results:
    env = bench.environment()
    half = half_capacity_load(options.capacity)
    loads = tuple(dict.fromkeys((*options.loads, half))) if half else options.loads
    runs = [await one_run(bench, options, loads) for _ in range(options.runs)]
    result = {"half_capacity_load": half or None, "by_load": medians_of(runs), "runs": runs}
    return {"latency": emit("latency", vars(options), result, env)}


def half_capacity_load(capacity: float) -> int:
    """The offered load (changes/s) at half of one worker's capacity; 0 when it is not known."""
    return round(capacity / 2)


async def one_run(bench: Bench, options: Options, loads: Sequence[int]) -> dict[str, Any]:
    sims = simulators_config(latency_ms=options.api_latency_ms)
    async with pipeline_run(bench, "latency", sims, unlimited_env()) as pipeline:
        await pipeline.start_workers(options.workers)
        expected = ExpectedOutcomes()
        await _offer(pipeline, expected, *WARM_UP, options)
        by_load: dict[str, Any] = {}
        for load in loads:
            count = int(load * options.seconds)
            by_load[str(load)] = _load_result(count, *await _offer(pipeline, expected, count, load, options))
        return by_load


async def _offer(
    pipeline: PipelineRun, expected: ExpectedOutcomes, count: int, rate: float, options: Options
) -> tuple[list[Outcome], float, float, float]:
    """Send ``count`` new changes at ``rate`` and wait for all their outcomes.

    Returns every outcome so far, the planned start and end of sending, and how late sending began (s).
    """
    clock = PlannedClock(time.time() + 1 + count * PREPARE_S_PER_EVENT, rate)
    events: list[GeneratedEvent] = []
    for event in generate_events(count, records=options.records, clock=clock):
        events.append(event)
        clock.made += 1
    expected.add(events)
    await asyncio.sleep(max(0.0, clock.start - time.time()))
    late_s = time.time() - clock.start
    await publish(events, pipeline.bench.bootstrap, pipeline.catalog.cdc, rate=rate)
    outcomes = await pipeline.follow_outcomes(expected.keys, options.timeout_s)
    return outcomes, clock.start, clock.start + count / rate, late_s


def _load_result(offered: int, outcomes: Sequence[Outcome], start: float, end: float, late_s: float) -> dict[str, Any]:
    """Latency percentiles (ms) of the changes planned between ``start`` and ``end``."""
    start_ms, end_ms = int(start * 1000), int(end * 1000)
    of_load = [o for o in outcomes if start_ms <= o.source_ts_ms <= end_ms]
    last_ms = max((o.at_ms for o in of_load), default=end_ms)
    return {
        **percentiles([o.at_ms - o.source_ts_ms for o in of_load if o.state == "delivered"]),
        "offered_per_s": round(offered / (end - start), 1),
        "settled_per_s": round(offered / ((last_ms - start_ms) / 1000), 1),  # offered / (last outcome − start)
        "publisher_late_ms": round(late_s * 1000, 1),
    }


if __name__ == "__main__":
    run_alone("latency", Options, run, __doc__ or "")
