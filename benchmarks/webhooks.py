"""Webhooks (issue #14): how many signed HubSpot webhook requests one worker accepts per second, the
worker's CPU per webhook, and the latency from an edit at HubSpot to Mailchimp's acknowledged write.

Per run: fresh topics, simulators without latency or limits, one worker with the three receivers
configured and lanes not rate limited. First ``records`` customers (routed to HubSpot and Mailchimp)
are created through CDC. Then:

- **burst**: ``requests`` signed HubSpot requests (webhooks v3, one propertyChange event each, about
  the customers' HubSpot objects, whose ids the receiver has read once and remembers), ``concurrency``
  at a time, made beforehand. ``webhooks_per_s`` = requests ÷ (first sent to last answered); every
  answer is a 200 only once Kafka acked the change: ``lost`` counts the requests answered 200 whose
  change is not on ``contacts.inbound`` when it is read right after the last answer (must be 0).
  ``cpu_ms_per_webhook`` = the worker's CPU from the first request until its conflict stage has
  decided every change (they carry the values the record holds: decided as echoes, nothing goes on
  to the platforms) ÷ requests.
- **edit latency**: the simulators notify the worker; one customer after another is edited at
  HubSpot (``/_sim/records/{id}/edit``, a person's edit) at ``edit_rate`` per second for
  ``edit_seconds``. Each edit is notified, decided (HubSpot's edit is later: it wins) and delivered
  to Mailchimp; the latency is Mailchimp's delivered outcome ``at_ms`` − the edit's time at HubSpot
  (the change's ``source_ts_ms``), p50/p95/p99.

The benchmark process signs and sends the burst on the same cores, so ``webhooks_per_s`` is bounded
by both; its CPU is reported (``bench_cpu_ms_per_webhook``) beside the worker's.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka.structs import ConsumerRecord

from benchmarks.changes import ExpectedOutcomes
from benchmarks.cli import run_alone
from benchmarks.harness import Bench, PipelineRun, pipeline_run, simulators_config, unlimited_env
from benchmarks.procstat import sample_processes
from benchmarks.report import Results, emit, medians_of, percentiles
from pipeline.dev.cdc_generator import GeneratedEvent, Kind
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.local_stack import read_topic
from pipeline.dev.simulators.config import SimulatorsConfig
from pipeline.dev.webhook_burst import hubspot_request, send_burst
from schemas.inbound import InboundChange

MAILCHIMP_SECRET = "bench-mailchimp-secret-0123456789"


@dataclass(frozen=True)
class Options:
    requests: int = 10_000
    concurrency: int = 32
    records: int = 200  # customers created first: the burst's objects, and one per edit
    edit_rate: float = 10.0  # edits at HubSpot per second
    edit_seconds: float = 20.0
    runs: int = 1
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.records < self.edit_rate * self.edit_seconds:
            raise ValueError("--records must be at least --edit-rate × --edit-seconds (one customer per edit)")


async def run(bench: Bench, options: Options) -> Results:
    env = bench.environment()
    runs = [await one_run(bench, options) for _ in range(options.runs)]
    return {"webhooks": emit("webhooks", vars(options), {**medians_of(runs), "runs": runs}, env)}


async def one_run(bench: Bench, options: Options) -> dict[str, Any]:
    sims = simulators_config()
    secrets = {
        "CONTACTSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET": sims.hubspot.client_secret,
        "CONTACTSYNC_WEBHOOKS__MAILCHIMP_SECRET": MAILCHIMP_SECRET,
        "CONTACTSYNC_WEBHOOKS__SALESFORCE_ORGANIZATION_ID": sims.salesforce.organization_id,
    }
    async with pipeline_run(bench, "webhooks", sims, unlimited_env() | secrets) as pipeline:
        await pipeline.start_workers(1)
        versions = await _create_customers(pipeline, options)
        objects = await _hubspot_objects(pipeline)
        burst = await _burst(pipeline, sims, [objects[record_id] for record_id in versions], options)
        await _notify_worker(pipeline)
        latency = await _edit_latency(pipeline, versions, options)
        return {**burst, "edit_to_mailchimp_ms": latency}


def _customer(record_id: str, ts_ms: int) -> GeneratedEvent:
    """A plain-form upsert of a subscribed customer (HubSpot and Mailchimp) at version ts_ms × 1000 + 1."""
    data = {"email": f"{record_id}@example.com", "contact_type": "customer", "first_name": "Ann", "subscribed": True}
    value = json.dumps({"op": "upsert", "id": record_id, "ts": ts_ms, "seq": 1, "data": data}).encode()
    return GeneratedEvent(record_id.encode(), value, Kind.CREATE, record_id, ts_ms * 1000 + 1)


async def _create_customers(pipeline: PipelineRun, options: Options) -> dict[str, int]:
    """Each customer's version, once HubSpot and Mailchimp hold it."""
    now_ms = int(time.time() * 1000)
    events = [_customer(f"wh-{n:06d}", now_ms) for n in range(options.records)]
    expected = ExpectedOutcomes().add(events)
    await publish(events, pipeline.bench.bootstrap, pipeline.catalog.cdc)
    await pipeline.follow_outcomes(expected, options.timeout_s)
    return {event.record_id: event.version for event in events if event.record_id and event.version}


async def _hubspot_objects(pipeline: PipelineRun) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.get(f"{pipeline.stack.base_urls['hubspot']}/_sim/records")
    return {record_id: int(view["native_id"]) for record_id, view in answer.json()["records"].items()}


async def _burst(
    pipeline: PipelineRun, sims: SimulatorsConfig, objects: list[int], options: Options
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{pipeline.workers[0].web_port}"
    url = f"{base}/webhooks/hubspot"
    start_ms = int(time.time() * 1000)
    requests = [
        hubspot_request(url, sims.hubspot.client_secret, objects[n % len(objects)], start_ms + n, {"firstname": "Ann"})
        for n in range(options.requests)
    ]
    async with sample_processes(pipeline.pids(), every_s=0.2) as processes:
        sent_ms = int(time.time() * 1000)
        statuses = await send_burst(url, requests, options.concurrency)
        answered_ms = int(time.time() * 1000)
        on_topic = await read_topic(pipeline.bench.bootstrap, pipeline.catalog.inbound)
        judged_ms = await _all_judged(base, options.requests, options.timeout_s)
    cpu = processes.cpu_seconds(sent_ms, judged_ms)
    on_kafka = {(c.platform_id, c.occurred_at_ms) for c in map(InboundChange.model_validate_json, _values(on_topic))}
    seconds = (answered_ms - sent_ms) / 1000
    return {
        "webhooks_per_s": round(options.requests / seconds, 1),
        "burst_s": round(seconds, 2),
        "accepted": statuses.count(200),
        "refused": len(statuses) - statuses.count(200),
        "lost": sum(status == 200 and r.marker not in on_kafka for r, status in zip(requests, statuses, strict=True)),
        "judged_s": round((judged_ms - sent_ms) / 1000, 2),
        "cpu_ms_per_webhook": round(cpu["worker-0"] * 1000 / options.requests, 3),
        "bench_cpu_ms_per_webhook": round(cpu["bench"] * 1000 / options.requests, 3),
        "cpu_share": processes.cpu_share(sent_ms, judged_ms),
    }


def _values(messages: list[ConsumerRecord[bytes, bytes]]) -> list[bytes]:
    return [message.value for message in messages if message.value is not None]


async def _all_judged(base: str, count: int, timeout_s: float) -> int:
    """When (ms) the worker's conflict stage has decided ``count`` platform changes."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=60) as client:
        while time.monotonic() < deadline:
            text = (await client.get(f"{base}/metrics")).text
            decided = sum(
                float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("contactsync_inbound_changes_total{")
            )
            if decided >= count:
                return int(time.time() * 1000)
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the conflict stage did not decide {count} changes in {timeout_s:g} s")


async def _notify_worker(pipeline: PipelineRun) -> None:
    """Every simulator notifies the worker's receivers from now on."""
    base = f"http://127.0.0.1:{pipeline.workers[0].web_port}/webhooks"
    urls = {"hubspot": f"{base}/hubspot", "mailchimp": f"{base}/mailchimp/{MAILCHIMP_SECRET}",
            "salesforce": f"{base}/salesforce"}
    async with httpx.AsyncClient(timeout=60) as client:
        for provider, url in urls.items():
            config = {"webhook": {"url": url}}
            (await client.put(f"{pipeline.stack.base_urls[provider]}/_sim/config", json=config)).raise_for_status()


async def _edit_latency(pipeline: PipelineRun, versions: dict[str, int], options: Options) -> dict[str, Any]:
    """Edit customers at HubSpot at a steady rate; percentiles of edit → Mailchimp's ack (ms)."""
    count = int(options.edit_rate * options.edit_seconds)
    edited = list(versions)[:count]
    hubspot = pipeline.stack.base_urls["hubspot"]
    started, late_s = time.monotonic(), 0.0
    async with httpx.AsyncClient(timeout=60) as client:
        for n, record_id in enumerate(edited):
            planned = started + n / options.edit_rate
            await asyncio.sleep(max(0.0, planned - time.monotonic()))
            late_s = max(late_s, time.monotonic() - planned)
            answer = await client.post(f"{hubspot}/_sim/records/{record_id}/edit",
                                       json={"fields": {"firstname": f"Edited{n}"}})
            answer.raise_for_status()
    # the decided change's version is the record's newest + 1 (pipeline.stages.conflict)
    expected = {(record_id, versions[record_id] + 1, "mailchimp") for record_id in edited}
    outcomes = await pipeline.follow_outcomes(expected, options.timeout_s)
    delivered = [o for o in outcomes if (o.record_id, o.version, o.provider) in expected and o.state == "delivered"]
    return {
        **percentiles([o.at_ms - o.source_ts_ms for o in delivered]),
        "edits": count, "delivered": len(delivered), "editor_late_ms": round(late_s * 1000, 1),
    }


if __name__ == "__main__":
    run_alone("webhooks", Options, run, __doc__ or "")
