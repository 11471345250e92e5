"""Running the simulators: in this process's event loop, or as a child process.

In process (tests)::

    async with run_simulators(SimulatorsConfig()) as sims:
        sims.hubspot.base_url          # http://127.0.0.1:PORT
        sims.mailchimp.base_url        # http://127.0.0.1:PORT/3.0

As a child process (demo, tests that kill things)::

    with start_simulator_process(only=["hubspot"]) as process:
        process.base_urls["hubspot"]
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.dev.simulators.base import ProviderSimulator
from pipeline.dev.simulators.config import PROVIDERS, SimulatorsConfig
from pipeline.dev.simulators.hubspot import HubSpotSimulator
from pipeline.dev.simulators.mailchimp import MailchimpSimulator
from pipeline.dev.simulators.salesforce import SalesforceSimulator


class RunningSimulators:
    """The started simulators by provider name; asking for one that is not running is a KeyError."""

    def __init__(self, simulators: Mapping[str, ProviderSimulator[Any]]) -> None:
        self.by_name = dict(simulators)

    @property
    def hubspot(self) -> HubSpotSimulator:
        simulator = self.by_name["hubspot"]
        assert isinstance(simulator, HubSpotSimulator)
        return simulator

    @property
    def salesforce(self) -> SalesforceSimulator:
        simulator = self.by_name["salesforce"]
        assert isinstance(simulator, SalesforceSimulator)
        return simulator

    @property
    def mailchimp(self) -> MailchimpSimulator:
        simulator = self.by_name["mailchimp"]
        assert isinstance(simulator, MailchimpSimulator)
        return simulator

    def base_urls(self) -> dict[str, str]:
        return {name: simulator.base_url for name, simulator in self.by_name.items()}


def build_simulator(name: str, config: SimulatorsConfig) -> ProviderSimulator[Any]:
    if name == "hubspot":
        return HubSpotSimulator(config.hubspot)
    if name == "salesforce":
        return SalesforceSimulator(config.salesforce)
    if name == "mailchimp":
        return MailchimpSimulator(config.mailchimp)
    raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")


@asynccontextmanager
async def run_simulators(
    config: SimulatorsConfig | None = None,
    *,
    only: Collection[str] = PROVIDERS,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
) -> AsyncIterator[RunningSimulators]:
    """Start the chosen simulators (port 0, the default: any free port) and stop them on exit."""
    config = config or SimulatorsConfig()
    simulators = {name: build_simulator(name, config) for name in only}
    try:
        for name, simulator in simulators.items():
            await simulator.start(host, (ports or {}).get(name, 0))
        yield RunningSimulators(simulators)
    finally:
        for simulator in simulators.values():
            await simulator.stop()


class SimulatorProcess:
    """``contactsync simulate`` in a child process; stop it with ``stop()`` or a ``with`` block."""

    def __init__(self, process: subprocess.Popen[str], base_urls: dict[str, str], config_file: Path | None) -> None:
        self.process = process
        self.base_urls = base_urls
        self._config_file = config_file

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._config_file is not None:
            self._config_file.unlink(missing_ok=True)
        return self.process.returncode

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def start_simulator_process(
    config: SimulatorsConfig | None = None,
    *,
    only: Collection[str] = PROVIDERS,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    start_timeout_s: float = 30.0,
) -> SimulatorProcess:
    """Run ``python -m pipeline.dev.simulators`` and wait for its line of base URLs (ports default 0)."""
    command = [sys.executable, "-m", "pipeline.dev.simulators", "--host", host]
    command += [arg for name in only for arg in ("--only", name)]
    command += [arg for name in PROVIDERS for arg in (f"--{name}-port", str((ports or {}).get(name, 0)))]
    config_file = None
    if config is not None:
        handle, path = tempfile.mkstemp(prefix="contactsync-sim-", suffix=".json")
        with os.fdopen(handle, "w") as file:
            file.write(config.model_dump_json())
        config_file = Path(path)
        command += ["--config", path]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], start_timeout_s)
    line = process.stdout.readline() if ready else ""
    if not line:
        SimulatorProcess(process, {}, config_file).stop()
        raise RuntimeError(f"the simulators did not report their URLs within {start_timeout_s} s")
    return SimulatorProcess(process, json.loads(line), config_file)
