"""End-to-end harness: the real broker, the provider simulators over HTTP, and worker processes.

Each test gets its own topic prefix, app id and data dirs, and retry tiers of 1 s, 2 s and 4 s
(the chain of topics.yaml with test-sized delays).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.demo import free_port, held_records, wait_until_settled
from pipeline.dev.local_stack import StackConfig, WorkerProcess, read_topic, wait_until_consuming
from pipeline.dev.reconcile import Held, Reconciliation
from pipeline.dev.simulators.config import SimulatorsConfig
from pipeline.dev.simulators.runner import RunningSimulators, run_simulators
from pipeline.kafka import topic_admin
from pipeline.kafka.stage_inputs import stage_inputs
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.lag import LagReport, LagSampler, lag_reader
from pipeline.settings import KafkaSettings, Settings
from tests.cli_runner import cli_env

TEST_TIERS = ["1s", "2s", "4s"]
PROVIDERS = ("hubspot", "salesforce", "mailchimp")


@dataclass
class Pipeline:
    """One isolated pipeline: its topics, simulators and workers."""

    bootstrap: str
    catalog: TopicCatalog
    topics_file: Path
    tmp: Path
    sims: RunningSimulators | None = None
    stack: StackConfig | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    app_id: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:8]}")

    async def start(
        self,
        exits: AsyncExitStack,
        sim_config: SimulatorsConfig | None = None,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
    ) -> None:
        sim_config = sim_config or SimulatorsConfig()
        self.sims = await exits.enter_async_context(run_simulators(sim_config))
        self.stack = StackConfig(
            self.bootstrap, self.app_id, self.catalog.prefix, self.sims.base_urls(), sim_config,
            topics_file=self.topics_file, extra_env=dict(env or {}),
        )
        for _ in range(workers):
            self.start_worker()
        if workers:
            assert await wait_until_consuming(self.bootstrap, self.app_id, workers, timeout_s=90), self.logs()

    def start_worker(self, data_dir: Path | None = None) -> WorkerProcess:
        assert self.stack is not None
        index = len(self.workers)
        worker = WorkerProcess(
            self.stack, data_dir or self.tmp / f"data-{index}", free_port(), self.tmp / f"worker-{index}.log"
        ).start()
        self.workers.append(worker)
        return worker

    async def publish(self, events: Sequence[GeneratedEvent], rate: float | None = None) -> None:
        await publish(events, self.bootstrap, self.catalog.cdc, rate=rate)

    async def settle(self, events: Sequence[GeneratedEvent], timeout_s: float = 120) -> Reconciliation:
        assert self.sims is not None
        return await wait_until_settled(
            events, self.bootstrap, self.catalog, Settings(), self.sims.base_urls(), timeout_s
        )

    async def settled_lag(self, timeout_s: float = 60) -> LagReport:
        """The group's lag once it is 0 on every stage input, or the last reading after ``timeout_s``."""
        async with lag_reader(self.bootstrap, LagSampler(self.app_id), stage_inputs(self.catalog, PROVIDERS)) as reader:
            for _ in range(int(timeout_s)):
                report = await reader.read()
                if report.lag == 0:
                    break
                await asyncio.sleep(1)
        return report

    async def regressions(self) -> list[tuple[str, str, list[tuple[float, str, str, int]]]]:
        """(provider, record id, its writes) of every record whose version went backwards somewhere."""
        found = []
        async with httpx.AsyncClient(timeout=30) as client:
            for provider, records in (await self.held()).items():
                for record_id, view in records.items():
                    if view.get("version_regressions"):
                        url = f"{self.sims.base_urls()[provider]}/_sim/records/{record_id}/history"  # type: ignore[union-attr]
                        history = (await client.get(url)).json()["history"]
                        found.append((provider, record_id, [
                            (w["at"], w["operation"], w["version"], w["request_seq"]) for w in history
                        ]))
        return found

    @staticmethod
    def report_regressions(found: list[tuple[str, str, list[tuple[float, str, str, int]]]]) -> str:
        """Print each record's full history (pytest shortens assertion messages) and sum them up."""
        for provider, record_id, writes in found:
            print(provider, record_id, *writes, sep="\n  ")
        return f"{len(found)} records went back in version; their writes are printed in the captured output"

    async def held(self) -> Held:
        assert self.sims is not None
        return await held_records(self.sims.base_urls())

    async def messages(self, topic: str) -> list:  # type: ignore[type-arg]
        return await read_topic(self.bootstrap, topic)

    def cli_env(self) -> dict[str, str]:
        """The environment of a ``contactsync`` command aimed at this pipeline (as its workers see it),
        its web port that of the first worker (the commands' default --url)."""
        assert self.stack is not None
        web_port = self.workers[0].web_port if self.workers else Settings().web_port
        return cli_env(**self.stack.worker_env(self.tmp / "cli-data", web_port))

    def logs(self) -> str:
        """Where the workers' logs are, for assertion messages, and what each worker last warned of:
        a CI run keeps only its printed output, not the log files."""
        return "worker logs: " + " ".join(str(w.log_file) for w in self.workers) + "".join(
            f"\n--- worker-{index} ({'running' if worker.running else 'exited'}), its last warnings:\n"
            + "\n".join(_last_warnings(worker.log_file))
            for index, worker in enumerate(self.workers)
        )

    async def stop(self) -> None:
        await asyncio.gather(*(worker.shutdown() for worker in self.workers))


async def new_pipeline(
    bootstrap: str, topic_prefix: str, tmp: Path, tiers: Sequence[str] = TEST_TIERS,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> Pipeline:
    """A pipeline on fresh topics (test-sized retry tiers; ``configs``: more topic configs by topics.yaml
    name), nothing started yet."""
    catalog_file = yaml.safe_load(KafkaSettings().topics_file.read_text())
    catalog_file["retry_tiers"] = list(tiers)
    for topic in catalog_file["topics"]:
        topic["config"] = {**topic.get("config", {}), **(configs or {}).get(topic["name"], {})}
    topics_file = tmp / "topics.yaml"
    topics_file.write_text(yaml.safe_dump(catalog_file))
    catalog = TopicCatalog.load(topics_file, topic_prefix)
    applied = await topic_admin.apply(catalog, bootstrap)
    assert not applied.refused
    return Pipeline(bootstrap, catalog, topics_file, tmp)


@pytest.fixture
async def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[tuple[Pipeline, AsyncExitStack]]:
    """A pipeline on fresh topics (test-sized retry tiers); call ``start`` with the simulators' config."""
    harness = await new_pipeline(kafka_bootstrap, topic_prefix, tmp_path)
    async with AsyncExitStack() as exits:
        try:
            yield harness, exits
        finally:
            await harness.stop()


def _last_warnings(log_file: Path, count: int = 12, width: int = 400) -> list[str]:
    if not log_file.exists():
        return ["(no log)"]
    lines = log_file.read_text(errors="replace").splitlines()
    warned = [line for line in lines if re.search(r'"level": "(warning|error|critical)"', line)]
    return [line[:width] for line in warned[-count:]] or ["(none)"]
