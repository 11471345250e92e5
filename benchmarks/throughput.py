"""Throughput and CPU per change, cdc to provider ack through all four stages, with 1 and 2 workers,
against two baselines over the same changes; and worker memory.

Per run: fresh topics, simulators with no latency and no limits, workers whose provider lanes are
not rate limited. The workers join and finish recovery first; then ``events`` changes are published
at full speed (the publisher outruns the pipeline, so the input never runs dry and no rebalance
falls inside the measurement). The window runs from the first message on contacts.validated (the
first stage's output) to the last provider ack; changes/s is events over the window, checked
against what the simulators hold. CPU ms per change is the workers' user + system time from /proc
over the window, per change (summed over the workers).

The baselines, in the same invocation, on the same broker, with the same events, interleaved with
the pipeline runs: the bare aiokafka relay (``benchmarks.relay``) and the same relay as four Faust
agents (``benchmarks.faust_relay``, the framework's floor), timed and measured the same way
(``benchmarks.baseline``: first message on the first hop's output to the last on the last hop's).
Ratios are the medians of each run's pipeline figure over the same run's baseline figure.

Repeated outcomes: terminal outcomes for a (record, version, provider) that already had one; a
fault-free run should have none. Memory: each worker's RSS is sampled from /proc while it works;
peak is VmHWM, steady is the median RSS between the first and the last ack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks import faust_relay, relay
from benchmarks.baseline import Command, time_baseline
from benchmarks.changes import OutcomeKey, make_changes
from benchmarks.cli import run_alone
from benchmarks.harness import Bench, pipeline_run, simulators_config, unlimited_env
from benchmarks.procstat import sample_processes
from benchmarks.report import Results, emit, median, medians_of
from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.dev.cdc_publisher import publish

BASELINES: dict[str, Command] = {"relay": relay.command, "faust_relay": faust_relay.command}
TIMING = (
    "window: first message on the first stage's (hop's) output topic to the last provider ack (last "
    "message on the last hop); baselines read a pre-loaded input, groups joined before the window; "
    "CPU: user+system from /proc/<pid>/stat over the window, per change (workers summed)"
)


@dataclass(frozen=True)
class Options:
    events: int = 6_000
    records: int = 3_000  # distinct contacts the events are about
    workers: tuple[int, ...] = (1, 2)
    runs: int = 3
    seed: int = 7
    timeout_s: float = 300.0


async def run(bench: Bench, options: Options) -> Results:
    env = bench.environment()
    events, expected = make_changes(options.events, options.records, options.seed)
    baselines: dict[str, list[dict[str, Any]]] = {name: [] for name in BASELINES}
    pipelines: dict[str, list[dict[str, Any]]] = {str(count): [] for count in options.workers}
    for _ in range(options.runs):  # interleaved, so that a noisy minute hurts every case alike
        for name, command in BASELINES.items():
            baselines[name].append(await time_baseline(bench, name, command, events, options.timeout_s))
        for count in options.workers:
            pipelines[str(count)].append(await one_run(bench, events, expected, count, options.timeout_s))
    per_workers = {count: medians_of(runs) for count, runs in pipelines.items()}
    result: dict[str, Any] = {
        "timing": TIMING,
        "changes_per_s": {count: r["changes_per_s"] for count, r in per_workers.items()},
        "worker_cpu_ms_per_change": {count: r["worker_cpu_ms_per_change"] for count, r in per_workers.items()},
    }
    for name, runs in baselines.items():
        result[f"{name}_per_s"] = median([run["changes_per_s"] for run in runs])
        result[f"{name}_cpu_ms_per_change"] = median([run["cpu_ms_per_change"] for run in runs])
        result[f"changes_per_s_ratio_to_{name}"] = _ratios(pipelines, runs, "changes_per_s", "changes_per_s")
        result[f"cpu_ratio_to_{name}"] = _ratios(pipelines, runs, "worker_cpu_ms_per_change", "cpu_ms_per_change")
    result |= {
        "repeated_outcomes": {count: max(r["repeated_outcomes"] for r in runs) for count, runs in pipelines.items()},
        "repeated_share_pct": {count: max(map(_repeated_pct, runs)) for count, runs in pipelines.items()},
        "runs": {**baselines, **pipelines},
    }
    memory = {"rss_mb": {count: r["rss_mb"] for count, r in per_workers.items()}}
    return {
        "throughput": emit("throughput", vars(options), result, env),
        "memory": emit("memory", vars(options), memory, env),
    }


def one_worker_capacity(results: Results) -> float:
    """The median changes/s of one worker in the throughput results (0 when that was not run)."""
    return float(results.get("throughput", {}).get("changes_per_s", {}).get("1", 0.0))


async def one_run(
    bench: Bench, events: Sequence[GeneratedEvent], expected: set[OutcomeKey], workers: int, timeout_s: float
) -> dict[str, Any]:
    async with pipeline_run(bench, f"throughput{workers}", simulators_config(), unlimited_env()) as pipeline:
        await pipeline.start_workers(workers)
        async with sample_processes(pipeline.pids()) as processes:
            await publish(events, bench.bootstrap, pipeline.catalog.cdc)
            processed = await pipeline.settle(events, expected, timeout_s)
        window = (processed.first_ms, processed.last_ms)
        cpu_s = processes.cpu_seconds(*window)
        worker_cpu_s = sum(seconds for name, seconds in cpu_s.items() if name.startswith("worker"))
        return {
            **processed.summary(len(events)),
            "worker_cpu_ms_per_change": round(1000 * worker_cpu_s / len(events), 3),
            "rss_mb": processes.memory(*window),
            "cpu_cores": processes.cpu_share(*window),
        }


def _ratios(
    pipelines: Mapping[str, Sequence[Mapping[str, Any]]], baseline: Sequence[Mapping[str, Any]], field: str, of: str
) -> dict[str, float]:
    """Per worker count, the median over runs of the run's ``field`` ÷ the same run's baseline ``of``."""
    return {
        count: median([run[field] / base[of] for run, base in zip(runs, baseline, strict=True)])
        for count, runs in pipelines.items()
    }


def _repeated_pct(run: Mapping[str, Any]) -> float:
    return round(100 * int(run["repeated_outcomes"]) / max(1, int(run["terminal_outcomes"])), 2)


if __name__ == "__main__":
    run_alone("throughput", Options, run, __doc__ or "")
