"""The local single-node Apache Kafka (KRaft) for development, the demo and tests.

The broker runs from the Apache Kafka jars on Maven Central, fetched once with ``mvn`` into
``<cache_dir>/<version>/libs`` (outside the work tree; later starts need no network). Each broker
owns a run dir::

    <run_dir>/server.properties   written on every start (ports may change)
    <run_dir>/data/               KRaft metadata and topic data, kept across starts unless fresh
    <run_dir>/logs/kafka.log      the broker's output
    <run_dir>/kafka.pid           the running broker's process id

The broker is a detached ``java`` process in its own session, so it outlives the command that
started it; ``stop`` ends it by the pid in the run dir.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.errors import KafkaError

from pipeline.dev.jvm_process import check_port_free, cmdline, last_line, mvn_error, require_tool, stop_recorded
from pipeline.errors import ConfigError
from pipeline.kafka import topic_admin
from pipeline.settings import REPO_ROOT, LocalKafkaSettings

__all__ = ["BrokerState", "LocalKafka", "jars_cached", "throwaway_broker", "with_free_ports"]

_POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"
_LOG4J2 = REPO_ROOT / "tools" / "kafka" / "log4j2.properties"
# kafka-run-class.sh's defaults; calling java directly bypasses that script.
_JVM_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
]
# C1 only: on 2 busy cores a broker answers sooner and with less memory (benchmarks/
# local_kafka_start.sh, "test" against "warm"), at a lower peak throughput: for short-lived brokers.
_FAST_START_FLAGS = ["-XX:TieredStopAtLevel=1"]
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BrokerState:
    """A running local broker."""

    pid: int
    bootstrap: str
    run_dir: Path
    already_running: bool = False


def with_free_ports(settings: LocalKafkaSettings) -> LocalKafkaSettings:
    """The same settings with a free listener port and a free controller port."""
    port, controller_port = _free_port(settings.host), _free_port(settings.host)
    return settings.model_copy(update={"port": port, "controller_port": controller_port})


def jars_cached(settings: LocalKafkaSettings) -> bool:
    """Whether the broker's jars are already in the cache (a start then needs no network)."""
    return (_libs_dir(settings) / f"kafka_2.13-{settings.version}.jar").is_file()


@contextmanager
def throwaway_broker(settings: LocalKafkaSettings, run_dir: Path) -> Iterator[LocalKafka]:
    """Run a fresh broker in ``run_dir`` on free ports and yield it (``stop`` and ``start`` again keep
    its ports and data); stop it after."""
    broker = LocalKafka(with_free_ports(settings).model_copy(update={"run_dir": run_dir}), fast_start=True)
    broker.start(fresh=True)
    try:
        yield broker
    finally:
        broker.stop()


class LocalKafka:
    """Start, stop and inspect the broker that lives in ``settings.run_dir``.

    ``fast_start`` trades the broker's peak throughput for a quicker start (test brokers).
    """

    def __init__(self, settings: LocalKafkaSettings, *, fast_start: bool = False) -> None:
        self.settings = settings
        self._jvm_flags = [*_JVM_FLAGS, *_FAST_START_FLAGS] if fast_start else _JVM_FLAGS
        self.run_dir = settings.run_dir.resolve()
        self._pid_file = self.run_dir / "kafka.pid"
        self._properties = self.run_dir / "server.properties"
        self.log_file = self.run_dir / "logs" / "kafka.log"

    @property
    def bootstrap(self) -> str:
        """The address clients connect to."""
        return f"{self.settings.host}:{self.settings.port}"

    def status(self) -> BrokerState | None:
        """The running broker of this run dir, or None."""
        try:
            pid = int(self._pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not _is_broker(pid, self._properties):
            return None
        return BrokerState(pid, _advertised(self._properties), self.run_dir, already_running=True)

    def start(self, *, fresh: bool = False) -> BrokerState:
        """Start the broker and wait until it answers a metadata request; harmless when it runs."""
        running = self.status()
        if running is not None:
            return running
        java = require_tool("java")
        for port in (self.settings.port, self.settings.controller_port):
            check_port_free(self.settings.host, port)
        libs = _fetch_jars(self.settings)
        data = self.run_dir / "data"
        if fresh:
            shutil.rmtree(data, ignore_errors=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._properties.write_text(_server_properties(self.settings, data))
        if not (data / "meta.properties").is_file():
            self._format(java, libs)
        process = self._launch(java, libs)
        self._pid_file.write_text(f"{process.pid}\n")
        try:
            _wait_ready(self.bootstrap, process, self.settings.start_timeout_s, self.log_file)
        except BaseException:
            self.stop()
            raise
        return BrokerState(process.pid, self.bootstrap, self.run_dir)

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> bool:
        """SIGTERM (a controlled shutdown), SIGKILL after ``timeout_s``; False if nothing ran."""
        state = self.status()
        return stop_recorded(self._pid_file, state.pid if state else None, timeout_s)

    def _format(self, java: str, libs: Path) -> None:
        # --cluster-id=ID with "=": an id starting with "-" is then never read as an option.
        # A one-shot tool: C1 and the serial collector halve its start on 2 cores.
        command = [
            java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={_LOG4J2}", "-cp", f"{libs}/*",
            "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}",
            "-c", str(self._properties),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ConfigError(f"formatting Kafka storage failed: {last_line(done.stdout + done.stderr)}")

    def _launch(self, java: str, libs: Path) -> subprocess.Popen[bytes]:
        command = [
            java, *shlex.split(self.settings.heap), *self._jvm_flags,
            f"-Dlog4j2.configurationFile={_LOG4J2}", "-cp", f"{libs}/*",
            "kafka.Kafka", str(self._properties),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                start_new_session=True,
            )


def _libs_dir(settings: LocalKafkaSettings) -> Path:
    return settings.cache_dir.expanduser().resolve() / settings.version / "libs"


def _fetch_jars(settings: LocalKafkaSettings) -> Path:
    """Copy the broker's jars into the cache with mvn, unless they are there already.

    mvn writes into a private folder that is renamed into place when complete, so an interrupted
    fetch or two fetches at once never leave a half-filled libs dir behind.
    """
    libs = _libs_dir(settings)
    if jars_cached(settings):
        return libs
    mvn = require_tool("mvn")
    partial = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        mvn, "-B", "-q", "-f", str(_POM),
        f"-Dkafka.version={settings.version}", f"-Dkafka.libs.dir={partial}",
        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise ConfigError(f"mvn could not fetch the Kafka {settings.version} jars: {mvn_error(done.stdout)}")
    try:
        partial.rename(libs)
    except OSError:  # another process completed the same fetch first
        shutil.rmtree(partial, ignore_errors=True)
    return libs


def _cluster_id() -> str:
    """A KRaft cluster id as ``Uuid.randomUuid().toString()`` makes it: URL-safe base64, unpadded."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _server_properties(settings: LocalKafkaSettings, data: Path) -> str:
    host, port, controller = settings.host, settings.port, settings.controller_port
    return f"""\
# Written by pipeline/dev/local_kafka.py on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
# static quorum: storage is formatted without --standalone
controller.quorum.voters=1@{host}:{controller}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}
advertised.listeners=PLAINTEXT://{host}:{port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}

# one broker: the defaults (RF 3, 50 offsets partitions) would fail or crawl
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1

# topics.yaml is the only place topics are sized: no silent 1-partition topics
auto.create.topics.enable=false
delete.topic.enable=true
# the first consumer-group join would otherwise wait 3 s
group.initial.rebalance.delay.ms=0

# small machine
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
# allocated on heap at startup (default 128 MiB); must stay above 1 MiB per cleaner thread
log.cleaner.dedupe.buffer.size=8388608
"""


def _advertised(properties: Path) -> str:
    for line in properties.read_text().splitlines():
        if line.startswith("advertised.listeners="):
            return line.split("://", 1)[1]
    raise ConfigError(f"{properties} names no advertised.listeners; start with --fresh")


def _is_broker(pid: int, properties: Path) -> bool:
    """Whether ``pid`` is a live broker of this run dir, not a recycled pid."""
    arguments = cmdline(pid)
    return b"kafka.Kafka" in arguments and str(properties).encode() in arguments


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(bootstrap: str, process: subprocess.Popen[bytes], timeout_s: float, log_file: Path) -> None:
    """Block until the broker answers a metadata request; a ConfigError if it dies or times out.

    An open port is not enough: the broker accepts connections before it can serve metadata. The
    asyncio client runs in a thread of its own, so this works whether or not the caller runs an
    event loop.
    """
    deadline = time.monotonic() + timeout_s
    with ThreadPoolExecutor(max_workers=1) as thread:
        while not thread.submit(asyncio.run, _answers_metadata(bootstrap)).result():
            if process.poll() is not None:
                raise ConfigError(f"Kafka exited during start; see {log_file}: {_last_error(_tail(log_file))}")
            if time.monotonic() > deadline:
                raise ConfigError(f"Kafka did not answer at {bootstrap} within {timeout_s:.0f}s; see {log_file}")
            time.sleep(0.2)


async def _answers_metadata(bootstrap: str) -> bool:
    try:
        await topic_admin.partition_counts(bootstrap)
    except (ConfigError, KafkaError, OSError):  # not ready yet; the caller bounds the wait
        return False
    return True


def _last_error(log: str) -> str:
    errors = [line for line in log.splitlines() if " ERROR " in line]
    return errors[-1] if errors else last_line(log)


def _tail(path: Path, size: int = 4096) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode(errors="replace")
