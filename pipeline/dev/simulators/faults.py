"""Latency and fault draws. Three random streams (request faults, per-record failures, latency
jitter), each seeded from ``FaultConfig.seed``, so a seeded run meets the same faults for the
same sequence of requests, whatever the latency settings.
"""

from __future__ import annotations

import random
from typing import Literal

from pipeline.dev.simulators.config import FaultConfig, LatencyConfig

RequestFault = Literal["server_error", "timeout", "throttle"]


class FaultInjector:
    def __init__(self, faults: FaultConfig, latency: LatencyConfig) -> None:
        self.reconfigure(faults, latency)

    def reconfigure(self, faults: FaultConfig, latency: LatencyConfig) -> None:
        """Take new settings; a seeded config restarts its streams from the seed."""
        self.faults = faults
        self.latency = latency
        seed = faults.seed
        self._request_rng = random.Random(None if seed is None else f"{seed}:request")
        self._record_rng = random.Random(None if seed is None else f"{seed}:record")
        self._latency_rng = random.Random(None if seed is None else f"{seed}:latency")

    def delay_s(self) -> float:
        """Seconds to wait before answering the next request."""
        jitter = self._latency_rng.uniform(0, self.latency.jitter_ms) if self.latency.jitter_ms else 0.0
        return (self.latency.fixed_ms + jitter) / 1000

    def request_fault(self) -> RequestFault | None:
        """One draw per request, even when every probability is zero, to keep the stream aligned."""
        draw = self._request_rng.random()
        for fault, probability in (
            ("server_error", self.faults.server_error),
            ("timeout", self.faults.timeout),
            ("throttle", self.faults.throttle),
        ):
            if draw < probability:
                return fault  # type: ignore[return-value]
            draw -= probability
        return None

    def failing_records(self, count: int) -> list[bool]:
        """For each of ``count`` records in a batch: does it fail on its own (partial failure)?"""
        return [self._record_rng.random() < self.faults.partial_failure for _ in range(count)]
