"""API efficiency: how much of a rate-limited provider's allowance the pipeline turns into deliveries.

Each provider alone (the others disabled), every contact routed to it, the demo's mix of changes
(creates, updates and deletes: as many changes per contact as ``contactsync demo`` makes). Its
lane is limited to L requests a second with ``burst``, where L carries ``records_per_s`` at full
requests (L = records_per_s ÷ the provider's batch size: 2/s for HubSpot, 1/s for Salesforce,
0.4/s for Mailchimp at the default 200), and the simulator enforces the same limit where the
platform has one over a short window: HubSpot's rolling ten seconds hold burst + 10 × L requests
(what a lane of that rate and burst may start in any ten seconds, as the HubSpot defaults are set: 5 +
10 × 9.5 = 100; with 10 × L alone a lane that kept its rate was throttled now and then), Mailchimp
admits ⌈L⌉ a second (Salesforce has only a daily cap). Enough changes are published that the
provider's dispatch topic never runs dry while measuring (the backlog left at the end is reported:
0 means the lane was starved and the figure is a lower bound; more than 0 does not prove the
contrary, since it counts from the group's commits, which records carried to fill a request hold
back). The steady window starts ten seconds
(HubSpot's limit window) after the first request and lasts ``seconds``. Efficiency is delivered
records/s ÷ (L × batch size), deletes included, counting the records requests carried (a delete of
a record never sent is settled without a request: counted apart, ``deletes_without_request``);
throttled answers are counted from the simulator's request log, in the window and over the run.
Also per window: records delivered per request (and ÷ batch size, ``request_fill``: the efficiency
had every request slot been used), requests per change settled (any terminal
outcome), the share of the quota (L × seconds) used, and what a delete costs: requests that delete
or look a record up first, per delete settled. ``summary`` says per provider what to read first.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.cli import run_alone
from benchmarks.harness import Bench, PipelineRun, lane_env, pipeline_run, simulators_config
from benchmarks.offsets import group_lag
from benchmarks.report import Results, emit, medians_of
from pipeline.dev.cdc_generator import Kind, generate_events
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.demo import DemoOptions
from pipeline.dev.local_stack import read_topic
from pipeline.dev.simulators.config import PROVIDERS, ProviderSimConfig, SimulatorsConfig
from pipeline.settings import RoutingSettings, Settings
from schemas.dispatch import TERMINAL_STATES, Outcome

LIMIT_WINDOW_S = 10.0  # HubSpot's rolling window
# Changes published per record the window can deliver: about half of the demo's changes are
# superseded in the dispatcher's batch by a newer change of the same record and never sent, so at
# 1.5 a lane delivering at full efficiency (Mailchimp with its subscribes in the moves' batches)
# ran its dispatch topic dry five seconds before the window ended.
BACKLOG_MARGIN = 3.0
CHANGES_PER_RECORD = DemoOptions().events // DemoOptions().records
_MEMBER_HASH = re.compile(r"^[0-9a-f]{32}$")  # a Mailchimp subscriber hash in a path


@dataclass(frozen=True)
class Options:
    providers: tuple[str, ...] = PROVIDERS
    records_per_s: float = 200.0  # what the allowance carries at full requests: L = this ÷ batch size
    burst: int = 1  # the lane's default overshoots a rolling window: see README.md
    seconds: float = 20.0
    api_latency_ms: float = 50.0
    workers: int = 1
    runs: int = 3
    seed: int = 7
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if unknown := set(self.providers) - set(PROVIDERS):
            raise ValueError(f"unknown provider {', '.join(sorted(unknown))} (known: {', '.join(PROVIDERS)})")


async def run(bench: Bench, options: Options) -> Results:
    env = bench.environment()
    runs: dict[str, list[dict[str, Any]]] = {provider: [] for provider in options.providers}
    for _ in range(options.runs):  # interleaved, so that a noisy minute hurts every provider alike
        for provider in options.providers:
            runs[provider].append(await one_run(bench, provider, options))
    by_provider = {provider: medians_of(provider_runs) for provider, provider_runs in runs.items()}
    summary = {provider: _summary(provider_runs) for provider, provider_runs in runs.items()}
    figures = {"summary": summary, "by_provider": by_provider, "runs": runs}
    return {"api_efficiency": emit("api_efficiency", vars(options), figures, env)}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What to read first, per provider: the median efficiency, and its two factors: how full the
    requests were (``request_fill``: records per request ÷ batch size) and how much of the quota
    was used (a worker short of CPU leaves the lane idle between its batches); the cost of a
    delete, lookups and throttled answers summed over the runs, and whether the lane was ever
    starved (a run that left no backlog: its efficiency is a lower bound)."""
    medians = medians_of(runs)
    return {
        "efficiency": medians["efficiency"],
        "request_fill": medians.get("request_fill"),
        "quota_used_pct": medians["quota_used_pct"],
        "requests_per_delete": medians.get("requests_per_delete"),
        "lookups_for_deletes": sum(run["lookups_for_deletes"] for run in runs),
        "deletes_without_request": sum(run["deletes_without_request"] for run in runs),
        "throttled_in_runs": sum(run["throttled_in_run"] for run in runs),
        "starved_runs": sum(1 for run in runs if run["dispatch_backlog_at_end"] == 0),
    }


async def one_run(bench: Bench, provider: str, options: Options) -> dict[str, Any]:
    batch = getattr(Settings().providers, provider).batch_size
    limit = options.records_per_s / batch
    sims = _limited(simulators_config(latency_ms=options.api_latency_ms), provider, limit, options.burst)
    env = {**lane_env(provider, limit, options.burst), **_everyone_to(provider)}
    changes = int(BACKLOG_MARGIN * options.records_per_s * (LIMIT_WINDOW_S + options.seconds))
    events = list(generate_events(changes, records=max(1, changes // CHANGES_PER_RECORD), seed=options.seed))
    async with pipeline_run(bench, f"api-{provider}", sims, env, providers=[provider]) as pipeline:
        await pipeline.start_workers(options.workers)
        await publish(events, bench.bootstrap, pipeline.catalog.cdc)
        first = await _first_request_at(pipeline, provider, options.timeout_s)
        window = (first + LIMIT_WINDOW_S, first + LIMIT_WINDOW_S + options.seconds)
        await asyncio.sleep(max(0.0, window[1] - time.time()))
        backlog = await group_lag(
            bench.bootstrap, pipeline.app_id, [pipeline.catalog.dispatch(provider)], pipeline.catalog.partitions
        )
        requests = await _requests(pipeline, provider)
        in_window = [r for r in requests if window[0] <= r["received_at"] < window[1]]
        outcomes, unsettled = await _outcomes_of(bench, pipeline, _carried_by(in_window), options.timeout_s)
    settled = [o for o in outcomes if o.state in TERMINAL_STATES and window[0] * 1000 <= o.at_ms < window[1] * 1000]
    # attempts counts the requests that carried a version: 0 for a delete of a record never sent,
    # settled without one, which uses none of the allowance and so is not part of the efficiency.
    delivered = [o for o in settled if o.state == "delivered" and o.attempts > 0]
    unsent = [o for o in settled if o.state == "delivered" and o.attempts == 0]
    deletes = {(event.record_id, event.version) for event in events if event.kind == Kind.DELETE}
    deleted = sum(1 for o in delivered if (o.record_id, o.version) in deletes)
    delete_calls = [r for r in in_window if _deletes_by(provider, r)]
    lookups = [r for r in in_window if _looks_up(provider, r)]
    delivered_per_s = len(delivered) / options.seconds
    return {
        "limit_per_s": round(limit, 3),
        "efficiency": round(delivered_per_s / (limit * batch), 3),
        "delivered_per_s": round(delivered_per_s, 1),
        "requests_per_s": round(len(in_window) / options.seconds, 2),
        "quota_used_pct": round(100 * len(in_window) / (limit * options.seconds), 1),
        "records_per_request": _ratio(len(delivered), len(in_window)),
        "request_fill": _ratio(len(delivered), len(in_window) * batch),
        "requests_per_change": _ratio(len(in_window), len(settled)),
        "deletes_delivered": deleted,
        "deletes_without_request": len(unsent),
        "requests_per_delete": _ratio(len(delete_calls) + len(lookups), deleted + len(unsent)),
        "lookups_for_deletes": len(lookups),
        "requests_by_call": _by_call(in_window),
        "carried_without_outcome": unsettled,
        "throttled_in_window": sum(1 for r in in_window if r["outcome"].startswith("throttled")),
        "throttled_in_run": sum(1 for r in requests if r["outcome"].startswith("throttled")),
        "dispatch_backlog_at_end": backlog,
        "changes_by_kind": dict(Counter(event.kind for event in events)),
    }


def _carried_by(requests: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """(record id, version) of every record the ``requests`` carried."""
    return {
        (str(ref["record_id"]), int(ref["version"]))
        for request in requests for ref in request["records"] if ref["record_id"] and ref["version"]
    }


async def _outcomes_of(
    bench: Bench, pipeline: PipelineRun, carried: set[tuple[str, int]], timeout_s: float
) -> tuple[list[Outcome], int]:
    """Every outcome on the topic once each record in ``carried`` has one (or ``timeout_s`` passed),
    and how many still had none then.

    A dispatcher publishes the outcomes of a batch once all of its requests are answered, seconds
    after the first on a limited lane, and stamps each when its own request was answered: read at
    the window's end, the outcomes of its last requests, stamped inside the window, are not on the
    topic yet (up to 400 of 2,860 records for Salesforce), and the efficiency would count them as
    not delivered.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        messages = await read_topic(bench.bootstrap, pipeline.catalog.outcomes)
        outcomes = [Outcome.model_validate_json(message.value) for message in messages]
        missing = carried - {(o.record_id, o.version) for o in outcomes}
        if not missing or loop.time() > deadline:
            return outcomes, len(missing)
        await asyncio.sleep(1.0)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _deletes_by(provider: str, request: dict[str, Any]) -> bool:
    """Whether ``request`` deletes records at ``provider`` (HubSpot's batch archive, Salesforce's
    collection delete, Mailchimp's member archive, which also removes members left at old addresses,
    directly or as operations of a ``POST /batches``)."""
    method, path = str(request["method"]), str(request["path"])
    match provider:
        case "hubspot":
            return path.endswith("/batch/archive")
        case "salesforce":
            return method == "DELETE" and path.endswith("/composite/sobjects")
        case _:
            return method == "DELETE" or "DELETE" in request.get("operations", {})


def _looks_up(provider: str, request: dict[str, Any]) -> bool:
    """Whether ``request`` looks a record up before a delete: HubSpot's batch read of ids,
    Salesforce's query, Mailchimp's GET of the member (is it still the deleted record's?), directly
    or as operations of a ``POST /batches``."""
    method, path = str(request["method"]), str(request["path"])
    match provider:
        case "hubspot":
            return path.endswith("/batch/read")
        case "salesforce":
            return path.endswith("/query")
        case _:
            return method == "GET" and "/members/" in path or "GET" in request.get("operations", {})


def _limited(sims: SimulatorsConfig, provider: str, limit_per_s: float, burst: int) -> SimulatorsConfig:
    """``sims`` with ``provider``'s short-window request limit where it has one: what a lane of
    ``limit_per_s`` and ``burst`` may start in the window."""
    limited: ProviderSimConfig
    match provider:
        case "hubspot":
            limited = sims.hubspot.model_copy(update={"requests_per_10s": burst + round(limit_per_s * LIMIT_WINDOW_S)})
        case "mailchimp":
            limited = sims.mailchimp.model_copy(update={"requests_per_second": math.ceil(limit_per_s)})
        case _:
            return sims
    return sims.model_copy(update={provider: limited})


def _by_call(requests: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """How many requests, and records per request, by API call (method and the path's last two
    parts, a Mailchimp member's hash as ``{member}``; a batch operations request also by the methods
    of its operations, like ``POST /batches [GET,PATCH]``)."""
    calls: dict[str, list[int]] = {}
    for request in requests:
        tail = ["{member}" if _MEMBER_HASH.match(part) else part for part in request["path"].split("/")[-2:]]
        operations = f" [{','.join(sorted(request['operations']))}]" if request.get("operations") else ""
        calls.setdefault(f"{request['method']} {'/'.join(tail)}{operations}", []).append(request["record_count"])
    return {
        call: {"count": len(counts), "records_per_request": round(sum(counts) / len(counts), 1)}
        for call, counts in sorted(calls.items())
    }


def _everyone_to(provider: str) -> dict[str, str]:
    """Worker settings that route every contact to ``provider``."""
    routing = RoutingSettings()
    by_type = {contact_type: [provider] for contact_type in routing.by_contact_type}
    return {"CONTACTSYNC_ROUTING__BY_CONTACT_TYPE": json.dumps(by_type)}


async def _requests(pipeline: PipelineRun, provider: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"{pipeline.stack.base_urls[provider]}/_sim/requests")
    requests: list[dict[str, Any]] = answer.json()["requests"]
    return requests


async def _first_request_at(pipeline: PipelineRun, provider: str, timeout_s: float) -> float:
    """When the provider received its first API request carrying a record (wall clock, s; a
    Salesforce token request does not count)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (carrying := [r for r in await _requests(pipeline, provider) if r["record_count"]]):
        if loop.time() > deadline:
            raise RuntimeError(f"no record reached {provider} in {timeout_s} s; see {pipeline.run_dir}")
        await asyncio.sleep(0.5)
    return float(carrying[0]["received_at"])


if __name__ == "__main__":
    run_alone("api_efficiency", Options, run, __doc__ or "")
