"""Throughput, cdc to provider ack through all four stages, with 1 and 2 workers; and worker memory.

Per run: fresh topics, simulators with no latency and no limits, workers whose provider lanes are
not rate limited. The workers join first; then ``events`` changes are published at full speed (the
publisher outruns the pipeline, so the input never runs dry and no rebalance falls inside the
measurement). Throughput is events / (last provider ack − first message on contacts.validated),
checked against what the simulators hold. The baseline, in the same invocation on the same broker,
is the bare aiokafka relay over four hops (``benchmarks.relay``) with the same events.

Memory: each worker's RSS is sampled from /proc while it works; peak is VmHWM, steady is the
median RSS between the first and the last ack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.changes import OutcomeKey, make_changes
from benchmarks.cli import run_alone
from benchmarks.harness import Bench, pipeline_run, simulators_config, unlimited_env
from benchmarks.procstat import sample_processes
from benchmarks.relay import relay_throughput
from benchmarks.report import emit, median, medians_of
from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.dev.cdc_publisher import publish


@dataclass(frozen=True)
class Options:
    events: int = 6_000
    records: int = 3_000  # distinct contacts the events are about
    workers: tuple[int, ...] = (1, 2)
    runs: int = 3
    seed: int = 7
    timeout_s: float = 300.0


async def run(bench: Bench, options: Options) -> None:
    env = bench.environment()
    events, expected = make_changes(options.events, options.records, options.seed)
    relay_rates: list[float] = []
    pipeline_runs: dict[int, list[dict[str, Any]]] = {count: [] for count in options.workers}
    for _ in range(options.runs):  # interleaved, so that a noisy minute hurts every case alike
        relay_rates.append(await relay_throughput(bench, events, options.timeout_s))
        for count in options.workers:
            pipeline_runs[count].append(await one_run(bench, events, expected, count, options.timeout_s))
    relay = median(relay_rates)
    per_workers = {str(count): medians_of(runs) for count, runs in pipeline_runs.items()}
    emit(
        "throughput", vars(options),
        {
            "changes_per_s": {count: result["changes_per_s"] for count, result in per_workers.items()},
            "relay_per_s": relay,
            "ratio_to_relay": {count: round(r["changes_per_s"] / relay, 3) for count, r in per_workers.items()},
            "runs": {"relay_per_s": relay_rates, **{str(count): runs for count, runs in pipeline_runs.items()}},
        },
        env,
    )  # fmt: skip
    emit(
        "memory", vars(options),
        {"rss_mb": {count: result["rss_mb"] for count, result in per_workers.items()}},
        env,
    )  # fmt: skip


async def one_run(
    bench: Bench, events: Sequence[GeneratedEvent], expected: set[OutcomeKey], workers: int, timeout_s: float
) -> dict[str, Any]:
    async with pipeline_run(bench, f"throughput{workers}", simulators_config(), unlimited_env()) as pipeline:
        await pipeline.start_workers(workers)
        async with sample_processes(pipeline.pids()) as processes:
            await publish(events, bench.bootstrap, pipeline.catalog.cdc)
            processed = await pipeline.settle(events, expected, timeout_s)
        window = (processed.first_ms, processed.last_ms)
        cores = processes.cpu_share(*window)
        worker_cpu_s = sum(share for name, share in cores.items() if name.startswith("worker")) * processed.seconds
        return {
            **processed.summary(len(events)),
            "worker_cpu_ms_per_change": round(1000 * worker_cpu_s / len(events), 2),
            "rss_mb": processes.memory(*window),
            "cpu_cores": cores,
        }


if __name__ == "__main__":
    run_alone("throughput", Options, run, __doc__ or "")
