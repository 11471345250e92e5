"""The pipeline on one machine, for the demo and the end-to-end tests: workers wired to a broker and
to the provider simulators, and reading a topic back from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from pipeline.dev.simulators.config import SimulatorsConfig

V = TypeVar("V")


@dataclass(frozen=True)
class StackConfig:
    """Everything a worker of one isolated pipeline needs: one app id, one topic prefix."""

    bootstrap: str
    app_id: str
    topic_prefix: str
    base_urls: Mapping[str, str]
    simulators: SimulatorsConfig = SimulatorsConfig()
    topics_file: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def worker_env(self, data_dir: Path, web_port: int) -> dict[str, str]:
        """The environment of one worker process: settings as CONTACTSYNC_ variables."""
        sims = self.simulators
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "CONTACTSYNC_APP_ID": self.app_id,
            "CONTACTSYNC_KAFKA__TOPIC_PREFIX": self.topic_prefix,
            "CONTACTSYNC_DATA_DIR": str(data_dir),
            "CONTACTSYNC_WEB_PORT": str(web_port),
            "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN": sims.hubspot.token,
            "CONTACTSYNC_PROVIDERS__SALESFORCE__CLIENT_ID": sims.salesforce.client_id,
            "CONTACTSYNC_PROVIDERS__SALESFORCE__CLIENT_SECRET": sims.salesforce.client_secret,
            "CONTACTSYNC_PROVIDERS__SALESFORCE__USERNAME": sims.salesforce.username,
            "CONTACTSYNC_PROVIDERS__SALESFORCE__PASSWORD": sims.salesforce.password,
            "CONTACTSYNC_PROVIDERS__MAILCHIMP__API_KEY": sims.mailchimp.api_key,
            "CONTACTSYNC_PROVIDERS__MAILCHIMP__LIST_ID": sims.mailchimp.list_id,
        }
        for provider in ("hubspot", "salesforce", "mailchimp"):
            if provider in self.base_urls:
                env[f"CONTACTSYNC_PROVIDERS__{provider.upper()}__BASE_URL"] = self.base_urls[provider]
            else:
                env[f"CONTACTSYNC_PROVIDERS__{provider.upper()}__ENABLED"] = "false"
        if self.topics_file is not None:
            env["CONTACTSYNC_KAFKA__TOPICS_FILE"] = str(self.topics_file)
        return {**env, **self.extra_env}


class WorkerProcess:
    """One ``contactsync worker`` child process, its log in ``log_file``."""

    def __init__(self, stack: StackConfig, data_dir: Path, web_port: int, log_file: Path) -> None:
        self.log_file = log_file
        self.data_dir = data_dir
        self.web_port = web_port
        self._env = {**_clean_environ(), **stack.worker_env(data_dir, web_port)}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-c", "from pipeline.cli import main; main()", "worker"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash a test wants, with no shutdown and no last commit."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (Faust's clean shutdown), SIGKILL after ``timeout_s``."""
        if self.process is None or not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    async def shutdown(self, timeout_s: float = 30.0) -> None:
        """``stop`` without blocking this event loop: simulators served from it must keep answering
        the requests the worker finishes before it exits (blocked, they held every worker until its
        SIGKILL, 30 s later)."""
        await asyncio.to_thread(self.stop, timeout_s)


def _clean_environ() -> dict[str, str]:
    """This process's environment without settings that would leak into a worker's."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CONTACTSYNC_") and name != "KAFKA_BOOTSTRAP_SERVERS"
    }


async def wait_until_consuming(
    bootstrap: str, group_id: str, members: int, timeout_s: float, *, besides: frozenset[str] = frozenset()
) -> frozenset[str]:
    """The member ids of the group once it is Stable with ``members`` members not in ``besides``
    (members of killed workers linger until their session times out); empty after ``timeout_s``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(KafkaError):
                (response,) = await admin.describe_consumer_groups([group_id])
                _error, _group, state, _kind, _protocol, joined = response.groups[0][:6]
                ids = frozenset(member[0] for member in joined)
                if state == "Stable" and len(ids - besides) >= members and not ids & besides:
                    return ids
            await asyncio.sleep(0.5)
        return frozenset()
    finally:
        await admin.close()


async def poll_until(
    look: Callable[[], Awaitable[tuple[V, bool]]], timeout_s: float, worker: WorkerProcess | None = None
) -> V:
    """Look each second until ``look`` says its answer is final, ``timeout_s`` passes or the
    worker stops; the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer, final = await look()
        if final or time.monotonic() > deadline or (worker is not None and not worker.running):
            return answer
        await asyncio.sleep(1.0)


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` from the beginning up to its end offsets now."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions) if partitions else {}
        messages: list[ConsumerRecord[bytes, bytes]] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                messages += [record for record in records if record.offset < ends[tp]]
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        return messages
    finally:
        await asyncio.sleep(0)  # aiokafka awaits a task of its own on stop; let it start first
        await consumer.stop()
