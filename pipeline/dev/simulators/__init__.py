"""Local HTTP simulators of HubSpot, Salesforce and Mailchimp, for tests and the demo.

Each speaks its platform's API (validated against the specs in ``specs/``), answers with the
platform's own success, partial-failure, error and throttling bodies, enforces the platform's
limits, injects configurable latency and faults, and keeps every record's write history, which
``/_sim/`` endpoints expose (see ``inspection``). Start them with ``run_simulators`` (in process),
``start_simulator_process`` (child process) or ``contactsync simulate``.
"""

from __future__ import annotations

from pipeline.dev.simulators.config import (
    FaultConfig,
    HubSpotSimConfig,
    LatencyConfig,
    MailchimpSimConfig,
    SalesforceSimConfig,
    SimulatorsConfig,
)
from pipeline.dev.simulators.runner import RunningSimulators, SimulatorProcess, run_simulators, start_simulator_process

__all__ = [
    "FaultConfig",
    "HubSpotSimConfig",
    "LatencyConfig",
    "MailchimpSimConfig",
    "RunningSimulators",
    "SalesforceSimConfig",
    "SimulatorProcess",
    "SimulatorsConfig",
    "run_simulators",
    "start_simulator_process",
]
