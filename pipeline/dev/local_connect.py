"""A local Kafka Connect worker (distributed mode, one member) with the Debezium PostgreSQL connector.

Its jars come from Maven Central through ``tools/connect/pom.xml``, fetched once into the broker's
cache (``<local_kafka.cache_dir>/<kafka version>/connect/libs`` for the worker, ``.../connect/plugins/
debezium-postgres-<version>`` for the connector, loaded in its own class loader through plugin.path).
The worker keeps its connector configs, source offsets and statuses in the topics that topics.yaml
declares (``contacts.connect.*``), so a restarted worker resumes where its connector stopped. Its
run dir holds ``worker.properties``, ``logs/connect.log`` and ``connect.pid``; like the broker, it
outlives the command that started it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.dev.jvm_process import check_port_free, cmdline, last_line, mvn_error, require_tool, stop_recorded
from pipeline.errors import ConfigError
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import REPO_ROOT, LocalConnectSettings, LocalKafkaSettings

_POM = REPO_ROOT / "tools" / "connect" / "pom.xml"
_LOG4J2 = REPO_ROOT / "tools" / "kafka" / "log4j2.properties"
_MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ConnectState:
    """A running worker and where its REST API answers."""

    pid: int
    url: str
    already_running: bool = False


class LocalConnect:
    """Start, stop and inspect the worker that lives in ``settings.run_dir``."""

    def __init__(self, settings: LocalConnectSettings, kafka: LocalKafkaSettings) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir.resolve()
        self.url = f"http://{settings.host}:{settings.port}"
        self.log_file = self.run_dir / "logs" / "connect.log"
        self._pid_file = self.run_dir / "connect.pid"
        self._properties = self.run_dir / "worker.properties"
        self._cache = kafka.cache_dir.expanduser().resolve() / kafka.version / "connect"
        self._kafka_version = kafka.version

    def status(self) -> ConnectState | None:
        """The running worker of this run dir, or None."""
        try:
            pid = int(self._pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        arguments = cmdline(pid)
        if _MAIN.encode() not in arguments or str(self._properties).encode() not in arguments:
            return None
        return ConnectState(pid, self.url, already_running=True)

    def start(self, bootstrap: str, catalog: TopicCatalog, group_id: str) -> ConnectState:
        """Start the worker and wait until its REST API answers; harmless when it runs."""
        running = self.status()
        if running is not None:
            return running
        java = require_tool("java")
        check_port_free(self.settings.host, self.settings.port)
        worker_libs, plugins = self.fetch_jars()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._properties.write_text(worker_properties(bootstrap, catalog, group_id, self.settings, plugins))
        command = [
            java, *shlex.split(self.settings.heap), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={_LOG4J2}", "-cp", f"{worker_libs}/*",
            _MAIN, str(self._properties),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=self.run_dir, start_new_session=True)
        self._pid_file.write_text(f"{process.pid}\n")
        try:
            self._wait_ready(process)
        except BaseException:
            self.stop()
            raise
        return ConnectState(process.pid, self.url)

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> bool:
        """SIGTERM, SIGKILL after ``timeout_s``; False if nothing ran."""
        state = self.status()
        return stop_recorded(self._pid_file, state.pid if state else None, timeout_s)

    def fetch_jars(self) -> tuple[Path, Path]:
        """The worker's libs dir and the plugin path, fetched with mvn unless cached."""
        worker = self._fetch("worker", self._cache / "libs")
        plugins = self._cache / "plugins"
        self._fetch("debezium", plugins / f"debezium-postgres-{self.settings.debezium_version}")
        return worker, plugins

    def _fetch(self, profile: str, libs: Path) -> Path:
        """Copy a profile's jars into ``libs`` (through a private folder renamed when complete)."""
        if libs.is_dir():
            return libs
        mvn = require_tool("mvn")
        partial = libs.with_name(f"{libs.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            mvn, "-B", "-q", "-f", str(_POM), "-P", profile, f"-Dkafka.version={self._kafka_version}",
            f"-Ddebezium.version={self.settings.debezium_version}", f"-Dlibs.dir={partial}",
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise ConfigError(f"mvn could not fetch the Kafka Connect jars ({profile}): {mvn_error(done.stdout)}")
        libs.parent.mkdir(parents=True, exist_ok=True)
        try:
            partial.rename(libs)
        except OSError:  # another process completed the same fetch first
            shutil.rmtree(partial, ignore_errors=True)
        return libs

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Until ``GET /connectors`` answers (the worker has joined its group and read its configs)."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            try:
                if httpx.get(f"{self.url}/connectors", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise ConfigError(f"Kafka Connect exited during start; see {self.log_file}: "
                                  f"{last_line(self.log_file.read_text(errors='replace'))}")
            if time.monotonic() > deadline:
                raise ConfigError(f"Kafka Connect did not answer at {self.url} within "
                                  f"{self.settings.start_timeout_s:.0f}s; see {self.log_file}")
            time.sleep(0.5)


def worker_properties(
    bootstrap: str, catalog: TopicCatalog, group_id: str, settings: LocalConnectSettings, plugins: Path
) -> str:
    """The worker's configuration: its group, its topics (from topics.yaml) and its REST listener."""
    return f"""\
# Written by pipeline/dev/local_connect.py on every start; edits are overwritten.
bootstrap.servers={bootstrap}
group.id={group_id}
config.storage.topic={catalog.connect("configs")}
offset.storage.topic={catalog.connect("offsets")}
status.storage.topic={catalog.connect("status")}
# -1: the broker's default; the topics exist already (contactsync topics apply)
config.storage.replication.factor=-1
offset.storage.replication.factor=-1
status.storage.replication.factor=-1
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
listeners=http://{settings.host}:{settings.port}
rest.advertised.host.name={settings.host}
rest.advertised.port={settings.port}
plugin.path={plugins}
plugin.discovery=only_scan
# source offsets (the replication slot's confirmed position follows them) every second
offset.flush.interval.ms=1000
"""
