"""``contactsync demo``: the whole pipeline on this machine, from CDC events to provider simulators.

Starts the local Kafka (unless KAFKA_BOOTSTRAP_SERVERS names a cluster), creates the topics under a
fresh prefix, starts the simulators and a worker, publishes generated changes, waits until every
change is accounted for at every provider, and summarises: what was delivered, skipped and
dead-lettered, and whether anything was lost or left stale.

The changes go in two parts, each timed on its own: a burst of ``events`` published at once (its
latency is a queue draining: the last change waits for all before it), then, once the burst settled,
``steady_rate`` changes a second for ``steady_s`` (the latency one change sees on a pipeline that
keeps up). The second part continues the first's records and versions.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
from aiokafka import ConsumerRecord

from pipeline.dev.cdc_generator import INVALID_KINDS, GeneratedEvent, expected_state, generate_events
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.local_kafka import LocalKafka
from pipeline.dev.local_stack import StackConfig, WorkerProcess, poll_until, read_topic, wait_until_consuming
from pipeline.dev.reconcile import Held, Reconciliation, reconcile
from pipeline.dev.simulators.runner import run_simulators
from pipeline.errors import ConfigError
from pipeline.kafka import topic_admin
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import REPO_ROOT, Settings
from schemas.contact import TransformedChange
from schemas.dead_letter import DeadLetter
from schemas.dispatch import DispatchRecord, Outcome
from schemas.headers import from_headers


@dataclass(frozen=True)
class DemoOptions:
    events: int = 2000
    records: int = 500
    invalid_ratio: float = 0.01
    seed: int = 7
    timeout_s: float = 180.0
    steady_rate: float = 20.0
    steady_s: float = 10.0

    @property
    def steady_events(self) -> int:
        return round(self.steady_rate * self.steady_s)


@dataclass
class Burst:
    """The first part of the demo: how many events, and when it started and settled."""

    events: int
    started: float  # time.monotonic()
    seconds: float = 0.0
    settled_at_ms: int = 2**63  # wall clock, comparable with a change's source time

    def settled(self, at_ms: int) -> None:
        self.seconds = time.monotonic() - self.started
        self.settled_at_ms = at_ms


async def run_demo(settings: Settings, options: DemoOptions) -> dict[str, Any]:
    run_id, run_dir = demo_run()
    bootstrap, catalog = await demo_topics(settings, run_id)
    async with run_simulators() as sims:
        stack = StackConfig(bootstrap, f"contactsync-demo-{run_id}", catalog.prefix, sims.base_urls())
        worker = WorkerProcess(stack, run_dir / "data", free_port(), run_dir / "worker.log").start()
        try:
            if not await wait_until_consuming(bootstrap, stack.app_id, 1, timeout_s=60):
                raise ConfigError(f"the worker did not join its consumer group; see {worker.log_file}")
            stream = generate_events(options.events + options.steady_events, records=options.records,
                                     seed=options.seed, invalid_ratio=options.invalid_ratio)
            generated = list(islice(stream, options.events))
            burst = Burst(len(generated), time.monotonic())
            await publish(generated, bootstrap, catalog.cdc, retry_deadline_s=settings.kafka.retry_deadline_s)
            verdict = await wait_until_settled(
                generated, bootstrap, catalog, settings, sims.base_urls(), options.timeout_s, worker
            )
            burst.settled(int(time.time() * 1000))
            if verdict.settled and options.steady_events:
                await publish(_kept_in(generated, stream), bootstrap, catalog.cdc, rate=options.steady_rate,
                              retry_deadline_s=settings.kafka.retry_deadline_s)
                verdict = await wait_until_settled(
                    generated, bootstrap, catalog, settings, sims.base_urls(), options.timeout_s, worker
                )
            outcomes = [Outcome.model_validate_json(m.value) for m in await read_topic(bootstrap, catalog.outcomes)]
            letters = await read_topic(bootstrap, catalog.dlq)
        finally:
            await worker.shutdown()
    return summarise(generated, verdict, outcomes, letters, worker.log_file, burst, options.steady_rate)


def _kept_in(kept: list[GeneratedEvent], events: Iterable[GeneratedEvent]) -> Iterator[GeneratedEvent]:
    """``events`` as they are taken (each made, and its time read, just before it is sent), each
    also appended to ``kept``."""
    for event in events:
        kept.append(event)
        yield event


def demo_run() -> tuple[str, Path]:
    """A new run's id and its directory (worker data and logs)."""
    run_id = time.strftime("%Y%m%d-%H%M%S")
    return run_id, REPO_ROOT / "var" / "demo" / run_id


async def demo_topics(settings: Settings, run_id: str) -> tuple[str, TopicCatalog]:
    """The broker (the local one, started unless a cluster is configured) and the run's own topics."""
    bootstrap = settings.kafka_bootstrap_servers or settings.kafka.bootstrap_servers
    if not bootstrap:
        bootstrap = LocalKafka(settings.local_kafka).start().bootstrap
    catalog = TopicCatalog.load(settings.kafka.topics_file, f"demo-{run_id}.")
    await topic_admin.apply(catalog, bootstrap)
    return bootstrap, catalog


async def wait_until_settled(
    generated: Sequence[GeneratedEvent],
    bootstrap: str,
    catalog: TopicCatalog,
    settings: Settings,
    base_urls: Mapping[str, str],
    timeout_s: float,
    worker: WorkerProcess | None = None,
) -> Reconciliation:
    """Poll the simulators until every record is where it belongs (or ``timeout_s`` passes)."""
    expected = expected_state(generated)
    providers = tuple(base_urls)
    invalid_sent = sum(1 for event in generated if event.kind in INVALID_KINDS)

    async def look() -> tuple[Reconciliation, bool]:
        letters = await read_topic(bootstrap, catalog.dlq)
        verdict = reconcile(
            expected, await held_records(base_urls), settings.routing, providers,
            dead_lettered_deliveries(letters),
        )
        return verdict, verdict.settled and invalid_letters(letters) >= invalid_sent

    return await poll_until(look, timeout_s, worker)


async def held_records(base_urls: Mapping[str, str]) -> Held:
    """What each simulator holds now, by provider and record id."""
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(client.get(f"{url}/_sim/records") for url in base_urls.values()))
    return {name: answer.json()["records"] for name, answer in zip(base_urls, answers, strict=True)}


def dead_lettered_deliveries(letters: Sequence[ConsumerRecord[bytes, bytes]]) -> set[tuple[str, str, int]]:
    """(record id, provider, version) of every delivery that was dead-lettered at dispatch or route."""
    found: set[tuple[str, str, int]] = set()
    for message in letters:
        letter = from_headers(DeadLetter, message.headers)
        if letter.stage == "dispatch":
            record = DispatchRecord.model_validate_json(message.value)
            found.add((record.record_id, record.provider, record.version))
        elif letter.stage == "route":
            change = TransformedChange.model_validate_json(message.value).change
            found.add((change.record_id, letter.provider, change.version))
    return found


def invalid_letters(letters: Sequence[ConsumerRecord[bytes, bytes]]) -> int:
    """How many of ``letters`` the validate stage wrote (the invalid events it refused)."""
    return sum(1 for m in letters if from_headers(DeadLetter, m.headers).stage == "validate")


def summarise(
    generated: Sequence[GeneratedEvent],
    verdict: Reconciliation,
    outcomes: Sequence[Outcome],
    letters: Sequence[ConsumerRecord[bytes, bytes]],
    log_file: Path,
    burst: Burst,
    steady_rate: float = 0.0,
) -> dict[str, Any]:
    """The demo's figures; ``reconciled`` is false unless every record is where it belongs and every
    invalid event was dead-lettered (a run that timed out before that is incomplete). A delivery's
    latency counts for the burst when its change was made before the burst settled, else for the
    steady part."""
    invalid_sent = sum(1 for event in generated if event.kind in INVALID_KINDS)
    delivered = [o for o in outcomes if o.state == "delivered"]
    latencies = {
        part: sorted(o.at_ms - o.source_ts_ms for o in delivered if (o.source_ts_ms < burst.settled_at_ms) == of_burst)
        for part, of_burst in (("burst", True), ("steady", False))
    }
    return {
        "events": len(generated),
        "invalid_events": invalid_sent,
        **outcome_figures(outcomes, letters),
        "expected_at_providers": verdict.expected,
        "matched_at_providers": verdict.matched,
        "lost": len(verdict.lost),
        "stale": len(verdict.stale),
        "reconciled": verdict.settled and invalid_letters(letters) >= invalid_sent,
        "misses": [vars(miss) for miss in (verdict.lost + verdict.stale)[:10]],
        "version_regressions": verdict.version_regressions,
        "burst_latency_ms": _percentiles(latencies["burst"]),
        "burst_s": round(burst.seconds, 2),
        "burst_events_per_s": round(burst.events / burst.seconds, 1) if burst.seconds else None,
        "steady_rate_per_s": steady_rate,
        "steady_latency_ms": _percentiles(latencies["steady"]),
        "worker_log": str(log_file),
    }


def outcome_figures(outcomes: Sequence[Outcome], letters: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[str, Any]:
    """What the pipeline did: deliveries per provider, skips, supersessions, dead letters."""
    delivered = Counter(o.provider for o in outcomes if o.state == "delivered")
    return {
        "delivered": dict(sorted(delivered.items())),
        "skipped_by_rule": sum(1 for o in outcomes if o.state == "skipped_by_rule"),
        "superseded": sum(1 for o in outcomes if o.state == "superseded"),
        "dead_lettered": len(letters),
    }


def pace_figures(outcomes: Sequence[Outcome], events: int, elapsed_s: float, log_file: Path) -> dict[str, Any]:
    """How fast: source time to the provider's ack of the deliveries, and events per second."""
    latencies = sorted(o.at_ms - o.source_ts_ms for o in outcomes if o.state == "delivered")
    return {
        "latency_ms": _percentiles(latencies),
        "elapsed_s": round(elapsed_s, 2),
        "events_per_s": round(events / elapsed_s, 1) if elapsed_s else None,
        "worker_log": str(log_file),
    }


def _percentiles(values: Sequence[int]) -> dict[str, float | None]:
    if len(values) < 2:
        return {"p50": float(values[0]) if values else None, "p99": float(values[0]) if values else None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
