"""API efficiency: how much of a rate-limited provider's allowance the pipeline turns into deliveries.

HubSpot alone, limited to ``limit_per_s`` requests a second: the simulator's rolling ten-second
window holds 10 × limit requests, and the worker's HubSpot lane is set to the same rate (with
``burst``). Every contact is routed to HubSpot, and enough changes are published that its dispatch
topic never runs dry while measuring. The steady window starts one limit window (10 s) after the
first request and lasts ``seconds``. Efficiency is delivered records/s ÷ (limit × batch size);
throttled answers are counted from the simulator's request log, in the window and over the run.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.cli import run_alone
from benchmarks.harness import Bench, PipelineRun, lane_env, pipeline_run, simulators_config
from benchmarks.offsets import group_lag
from benchmarks.report import emit, medians_of
from pipeline.dev.cdc_generator import generate_events
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.local_stack import read_topic
from pipeline.settings import HubSpotSettings, RoutingSettings
from schemas.dispatch import Outcome

PROVIDER = "hubspot"
LIMIT_WINDOW_S = 10.0  # HubSpot's rolling window
BACKLOG_MARGIN = 1.5  # changes published per change the window can deliver


@dataclass(frozen=True)
class Options:
    limit_per_s: int = 2
    burst: int = 1  # the lane's default (10) overshoots a rolling window: see README.md
    seconds: float = 20.0
    api_latency_ms: float = 50.0
    workers: int = 1
    runs: int = 3
    timeout_s: float = 120.0


async def run(bench: Bench, options: Options) -> None:
    env = bench.environment()
    runs = [await one_run(bench, options) for _ in range(options.runs)]
    emit("api_efficiency", vars(options), {**medians_of(runs), "runs": runs}, env)


async def one_run(bench: Bench, options: Options) -> dict[str, Any]:
    batch = HubSpotSettings().batch_size
    sims = simulators_config(latency_ms=options.api_latency_ms)
    sims = sims.model_copy(update={"hubspot": sims.hubspot.model_copy(
        update={"requests_per_10s": int(options.limit_per_s * LIMIT_WINDOW_S)}
    )})  # fmt: skip
    env = {**lane_env(PROVIDER, options.limit_per_s, options.burst), **_everyone_to(PROVIDER)}
    async with pipeline_run(bench, "api", sims, env, providers=[PROVIDER]) as pipeline:
        await pipeline.start_workers(options.workers)
        changes = int(BACKLOG_MARGIN * options.limit_per_s * batch * (LIMIT_WINDOW_S + options.seconds))
        await publish(generate_events(changes, records=changes), bench.bootstrap, pipeline.catalog.cdc)
        first = await _first_request_at(pipeline, options.timeout_s)
        window = (first + LIMIT_WINDOW_S, first + LIMIT_WINDOW_S + options.seconds)
        await asyncio.sleep(max(0.0, window[1] - time.time()))
        backlog = await group_lag(
            bench.bootstrap, pipeline.app_id, [pipeline.catalog.dispatch(PROVIDER)], pipeline.catalog.partitions
        )
        requests = await _requests(pipeline)
        messages = await read_topic(bench.bootstrap, pipeline.catalog.outcomes)
    outcomes = [Outcome.model_validate_json(message.value) for message in messages]
    in_window = [r for r in requests if window[0] <= r["received_at"] < window[1]]
    delivered = [o for o in outcomes if o.state == "delivered" and window[0] * 1000 <= o.at_ms < window[1] * 1000]
    delivered_per_s = len(delivered) / options.seconds
    return {
        "efficiency": round(delivered_per_s / (options.limit_per_s * batch), 3),
        "delivered_per_s": round(delivered_per_s, 1),
        "requests_per_s": round(len(in_window) / options.seconds, 2),
        "requests_by_call": _by_call(in_window),
        "throttled_in_window": sum(1 for r in in_window if r["outcome"].startswith("throttled")),
        "throttled_in_run": sum(1 for r in requests if r["outcome"].startswith("throttled")),
        "dispatch_backlog_at_end": backlog,
    }


def _by_call(requests: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """How many requests, and records per request, by API call (the last part of the path)."""
    calls: dict[str, list[int]] = {}
    for request in requests:
        calls.setdefault(request["path"].rsplit("/", 1)[-1], []).append(request["record_count"])
    return {
        call: {"count": len(counts), "records_per_request": round(sum(counts) / len(counts), 1)}
        for call, counts in sorted(calls.items())
    }


def _everyone_to(provider: str) -> dict[str, str]:
    """Worker settings that route every contact to ``provider``."""
    routing = RoutingSettings()
    by_type = {contact_type: [provider] for contact_type in routing.by_contact_type}
    return {"CONTACTSYNC_ROUTING__BY_CONTACT_TYPE": json.dumps(by_type)}


async def _requests(pipeline: PipelineRun) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"{pipeline.stack.base_urls[PROVIDER]}/_sim/requests")
    requests: list[dict[str, Any]] = answer.json()["requests"]
    return requests


async def _first_request_at(pipeline: PipelineRun, timeout_s: float) -> float:
    """When the provider received its first API request (wall clock, s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (requests := await _requests(pipeline)):
        if loop.time() > deadline:
            raise RuntimeError(f"no request reached {PROVIDER} in {timeout_s} s; see {pipeline.run_dir}")
        await asyncio.sleep(0.5)
    return float(requests[0]["received_at"])


if __name__ == "__main__":
    run_alone("api_efficiency", Options, run, __doc__ or "")
