"""What the benchmarks share: the broker, a pipeline on fresh topics, simulators, workers, and
reading back when the work was done.

A benchmark opens one ``Bench`` (the broker; a fresh local one unless KAFKA_BOOTSTRAP_SERVERS names
a cluster) and, per run, one ``PipelineRun``: topics of topics.yaml under a fresh prefix, the
provider simulators in a child process, and ``contactsync worker`` processes. Every run deletes
its topics afterwards, so the broker does not slow down as runs pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from benchmarks.changes import OutcomeKey, outcome_key
from benchmarks.offsets import delete_topics, edge_timestamps, group_lag
from benchmarks.report import environment, kafka_version
from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.dev.demo import free_port, wait_until_settled
from pipeline.dev.jvm_process import child_pids, stop_process
from pipeline.dev.local_kafka import LocalKafka, with_free_ports
from pipeline.dev.local_stack import StackConfig, WorkerProcess, wait_until_consuming
from pipeline.dev.simulators.config import PROVIDERS, LatencyConfig, SimulatorsConfig
from pipeline.dev.simulators.runner import start_simulator_process
from pipeline.kafka import topic_admin
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import REPO_ROOT, Settings
from schemas.dispatch import TERMINAL_STATES, Outcome

UNLIMITED = 1_000_000_000
WORKER_JOIN_TIMEOUT_S = 120.0
COMMIT_WAIT_S = 10.0
STALL_S = 30.0  # no new outcome for this long, and nothing uncommitted: the rest is lost
CHILD_STOP_S = 30.0  # a process asked to stop (SIGTERM) is killed after this long
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what stops a benchmark


@dataclass(frozen=True)
class Bench:
    """One benchmark invocation: a broker and a directory for worker data and logs."""

    bootstrap: str
    external: bool
    work_dir: Path
    broker_pid: int | None = None  # the local broker's; None for an external cluster
    broker: LocalKafka | None = None  # the local broker, to stop and start again; None for an external cluster

    def environment(self) -> dict[str, object]:
        return environment(kafka_version(self.external))


@contextlib.contextmanager
def open_bench(name: str) -> Iterator[Bench]:
    """A broker for one benchmark (started fresh, full JIT, and stopped after, unless external)."""
    with _broker_of(name) as bench, _stopped_with_its_processes():
        yield bench


@contextlib.contextmanager
def _stopped_with_its_processes() -> Iterator[None]:
    """Ctrl-C, ``kill`` (SIGTERM) or a closed terminal (SIGHUP) stop the benchmark and every process
    it started: the broker, simulators, workers and baselines run in sessions of their own, so no
    signal reaches them otherwise, and they would hold the machine's cores and ports. Stopped here
    rather than by the blocks that stop them after a run: a cancellation of the run was seen lost on
    its way there (the benchmark went on to its next run). The last started stops first: workers
    finish their requests to the simulators and leave the group while the broker is still there.
    The run's files stay in ``var/bench``."""

    def stop_children_and_exit(signum: int, _frame: object) -> None:
        for stopping in STOPPING:
            signal.signal(stopping, signal.SIG_IGN)
        print(f"\n{signal.Signals(signum).name}: stopping the benchmark's processes", file=sys.stderr, flush=True)
        for pid in sorted(child_pids(os.getpid()), key=_started_at, reverse=True):
            with contextlib.suppress(ProcessLookupError):
                stop_process(pid, CHILD_STOP_S)
        os._exit(128 + signum)

    previous = {signum: signal.signal(signum, stop_children_and_exit) for signum in STOPPING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _started_at(pid: int) -> int:
    """When the process started, in clock ticks since boot (``/proc/PID/stat``'s 22nd field)."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(after_name[19])


@contextlib.contextmanager
def _broker_of(name: str) -> Iterator[Bench]:
    work_dir = REPO_ROOT / "var" / "bench" / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if external:
        yield Bench(external, True, work_dir)
        return
    settings = with_free_ports(Settings().local_kafka).model_copy(update={"run_dir": work_dir / "kafka"})
    broker = LocalKafka(settings)
    state = broker.start(fresh=True)
    try:
        yield Bench(state.bootstrap, False, work_dir, state.pid, broker)
    finally:
        broker.stop()
        shutil.rmtree(work_dir / "kafka", ignore_errors=True)


def topic_partitions() -> int:
    """The partition count of every record-keyed topic (topics.yaml)."""
    return TopicCatalog.load(Settings().kafka.topics_file).partitions


def simulators_config(latency_ms: float = 0.0) -> SimulatorsConfig:
    """Simulators that never throttle, answering after ``latency_ms``."""
    defaults = SimulatorsConfig()
    latency = {"latency": LatencyConfig(fixed_ms=latency_ms)}
    return SimulatorsConfig(
        hubspot=defaults.hubspot.model_copy(
            update={**latency, "requests_per_10s": UNLIMITED, "daily_limit": UNLIMITED}
        ),
        salesforce=defaults.salesforce.model_copy(update={**latency, "daily_limit": UNLIMITED}),
        mailchimp=defaults.mailchimp.model_copy(update={**latency, "max_connections": 1000}),
    )


def lane_env(provider: str, rate_per_second: float, burst: int) -> dict[str, str]:
    """Worker settings for one provider lane's rate limit."""
    prefix = f"CONTACTSYNC_PROVIDERS__{provider.upper()}__"
    return {f"{prefix}RATE_PER_SECOND": str(rate_per_second), f"{prefix}BURST": str(burst)}


def unlimited_env() -> dict[str, str]:
    """Worker settings that take every provider lane's rate limit out of the way."""
    return {name: value for provider in PROVIDERS for name, value in lane_env(provider, 10_000, 10_000).items()}


@dataclass
class PipelineRun:
    """One isolated pipeline: fresh topics and app id, its simulators and its workers."""

    bench: Bench
    catalog: TopicCatalog
    stack: StackConfig
    run_dir: Path
    simulators_pid: int
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def app_id(self) -> str:
        return self.stack.app_id

    async def start_workers(self, count: int) -> None:
        """Start ``count`` more workers and wait until the group has them all."""
        for _ in range(count):
            index = len(self.workers)
            worker = WorkerProcess(
                self.stack, self.run_dir / f"data-{index}", free_port(), self.run_dir / f"worker-{index}.log"
            )
            self.workers.append(worker.start())
        if not await wait_until_consuming(self.bench.bootstrap, self.app_id, len(self.workers), WORKER_JOIN_TIMEOUT_S):
            raise RuntimeError(f"the workers did not join group {self.app_id}; see {self.run_dir}/worker-*.log")
        deadline = time.monotonic() + WORKER_JOIN_TIMEOUT_S
        while not all(_recovered(worker) for worker in self.workers):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not finish recovery; see {self.run_dir}/worker-*.log")
            await asyncio.sleep(0.2)

    def pids(self) -> dict[str, int]:
        """The processes of this run by name: workers, simulators, broker (when local) and the benchmark."""
        pids = {f"worker-{i}": w.process.pid for i, w in enumerate(self.workers) if w.process is not None}
        pids |= {"simulators": self.simulators_pid, "bench": os.getpid()}
        return pids if self.bench.broker_pid is None else pids | {"broker": self.bench.broker_pid}

    async def follow_outcomes(self, expected: Collection[OutcomeKey], timeout_s: float) -> list[Outcome]:
        """Read contacts.outcomes until every ``expected`` terminal outcome is there; return every outcome.

        Returns early, with fewer, when nothing new came for ``STALL_S`` while the group had
        committed everything: those changes were lost (``Processed.missing`` says how many).
        """
        consumer = AIOKafkaConsumer(
            self.catalog.outcomes, bootstrap_servers=self.bench.bootstrap, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )  # fmt: skip
        await consumer.start()
        outcomes: list[Outcome] = []
        remaining = set(expected)
        deadline = time.monotonic() + timeout_s
        progress_at = time.monotonic()
        try:
            while remaining:
                if time.monotonic() > deadline or not all(worker.running for worker in self.workers):
                    raise RuntimeError(f"{len(remaining)} outcomes missing; see {self.run_dir}/worker-*.log")
                if time.monotonic() - progress_at > STALL_S and await self.uncommitted(within_s=0) == 0:
                    return outcomes
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    batch = [Outcome.model_validate_json(record.value) for record in records]
                    remaining.difference_update(outcome_key(o) for o in batch if o.state in TERMINAL_STATES)
                    outcomes += batch
                    progress_at = time.monotonic()
            return outcomes
        finally:
            await consumer.stop()

    async def uncommitted(self, within_s: float) -> int:
        """Messages the group still has not committed after waiting up to ``within_s``."""
        topics, partitions = consumed_topics(self.catalog), self.catalog.partitions
        deadline = time.monotonic() + within_s
        while (lag := await group_lag(self.bench.bootstrap, self.app_id, topics, partitions)) > 0:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        return lag

    async def settle(self, events: Sequence[GeneratedEvent], expected: set[OutcomeKey], timeout_s: float) -> Processed:
        """Wait for the ``expected`` terminal outcomes of ``events`` (counted beforehand, see
        ``benchmarks.changes``, so that counting takes no CPU from the workers); then check what the
        providers hold and what the group committed."""
        outcomes = await self.follow_outcomes(expected, timeout_s)
        terminal = [outcome_key(outcome) for outcome in outcomes if outcome.state in TERMINAL_STATES]
        first_ms, _ = await edge_timestamps(self.bench.bootstrap, self.catalog.validated, self.catalog.partitions)
        verdict = await wait_until_settled(
            events, self.bench.bootstrap, self.catalog, Settings(), self.stack.base_urls, timeout_s=30
        )
        return Processed(
            first_ms, max(outcome.at_ms for outcome in outcomes), outcomes,
            len(expected - set(terminal)), len(set(terminal) - expected), len(terminal) - len(set(terminal)),
            len(verdict.lost), len(verdict.stale), await self.uncommitted(within_s=COMMIT_WAIT_S),
        )  # fmt: skip


@dataclass(frozen=True)
class Processed:
    """From the first message on contacts.validated to the last provider ack, and the checks after."""

    first_ms: int
    last_ms: int
    outcomes: list[Outcome]
    missing: int  # terminal outcomes that never came: changes the pipeline lost
    unexpected: int  # terminal outcomes for a provider the change was not routed to (see ExpectedOutcomes)
    repeated: int  # terminal outcomes for a (record, version, provider) that already had one: work done again
    lost: int  # (record, provider) pairs without their newest version, per the simulators
    stale: int
    uncommitted: int  # messages the group had not committed COMMIT_WAIT_S after the last outcome

    @property
    def seconds(self) -> float:
        return (self.last_ms - self.first_ms) / 1000

    def summary(self, events: int) -> dict[str, float | int]:
        return {
            "changes_per_s": round(events / self.seconds, 1),
            "seconds": round(self.seconds, 2),
            "delivered": sum(1 for outcome in self.outcomes if outcome.state == "delivered"),
            "terminal_outcomes": sum(1 for outcome in self.outcomes if outcome.state in TERMINAL_STATES),
            "missing_outcomes": self.missing,
            "unexpected_outcomes": self.unexpected,
            "repeated_outcomes": self.repeated,
            "lost": self.lost,
            "stale": self.stale,
            "uncommitted": self.uncommitted,
        }


@contextlib.asynccontextmanager
async def pipeline_run(
    bench: Bench,
    name: str,
    sims: SimulatorsConfig,
    env: Mapping[str, str],
    providers: Collection[str] = PROVIDERS,
) -> AsyncIterator[PipelineRun]:
    """Topics, simulators (only ``providers``; the others are disabled) and, on request, workers."""
    run_id = f"{name}-{uuid.uuid4().hex[:8]}"
    catalog = TopicCatalog.load(Settings().kafka.topics_file, f"bench-{run_id}.")
    await topic_admin.apply(catalog, bench.bootstrap)
    run_dir = bench.work_dir / run_id
    try:
        with start_simulator_process(sims, only=providers) as simulators:
            stack = StackConfig(
                bench.bootstrap, f"bench-{run_id}", catalog.prefix, simulators.base_urls, sims, extra_env=env
            )
            run = PipelineRun(bench, catalog, stack, run_dir, simulators.process.pid)
            try:
                yield run
            finally:
                for worker in run.workers:
                    worker.stop()
    finally:
        await delete_topics(bench.bootstrap, [spec.name for spec in catalog.specs()])
        for data_dir in run_dir.glob("data-*"):
            shutil.rmtree(data_dir, ignore_errors=True)


def _recovered(worker: WorkerProcess) -> bool:
    """Whether the worker finished recovery after its latest assignment (Faust logs "Worker ready")."""
    log = worker.log_file.read_text(errors="replace")
    return log.rfind("Worker ready") > log.rfind("Setting newly assigned partitions") >= 0


def consumed_topics(catalog: TopicCatalog) -> list[str]:
    """Every topic the workers' consumer group reads (table changelogs are not read through it)."""
    per_provider = [
        topic
        for provider in catalog.providers
        for topic in (catalog.dispatch(provider), *(catalog.retry(provider, t) for t in catalog.retry_tiers))
    ]
    return [catalog.cdc, catalog.validated, catalog.transformed, *per_provider]
