"""Memory and CPU of the processes of a run, sampled from ``/proc/<pid>/`` while they work.

On a 2-core machine the broker, the simulators and the workers share the cores, so a run's CPU
seconds per process say which of them the figure was bound by.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    at_ms: int
    rss_mb: float
    cpu_s: float  # user + system since the process started


@dataclass
class ProcessSamples:
    """Samples per process name, and each process's VmHWM (peak RSS) when sampling ended."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)

    def memory(self, start_ms: int, end_ms: int, prefix: str = "worker") -> dict[str, float | None]:
        """The largest peak and the largest median RSS between ``start_ms`` and ``end_ms`` (steady)
        of the processes whose name starts with ``prefix``."""
        steady = [
            statistics.median(sample.rss_mb for sample in window)
            for name, samples in self.samples.items()
            if name.startswith(prefix) and (window := _between(samples, start_ms, end_ms))
        ]
        peaks = [peak for name, peak in self.peak_mb.items() if name.startswith(prefix)]
        return {
            "peak_mb": round(max(peaks), 1) if peaks else None,
            "steady_mb": round(max(steady), 1) if steady else None,
        }

    def cpu_seconds(self, start_ms: int, end_ms: int) -> dict[str, float]:
        """Each process's CPU seconds between ``start_ms`` and ``end_ms``, read at each instant from the
        samples either side of it (so a window shorter than a few sampling periods is still measured)."""
        return {
            name: _cpu_at(samples, end_ms) - _cpu_at(samples, start_ms)
            for name, samples in self.samples.items()
            if len(samples) >= 2
        }

    def cpu_share(self, start_ms: int, end_ms: int) -> dict[str, float]:
        """Each process's CPU time between ``start_ms`` and ``end_ms``, in cores (1.0: one core busy)."""
        elapsed_s = (end_ms - start_ms) / 1000
        return {name: round(cpu_s / elapsed_s, 2) for name, cpu_s in self.cpu_seconds(start_ms, end_ms).items()}


@contextlib.asynccontextmanager
async def sample_processes(pids: Mapping[str, int], every_s: float = 0.5) -> AsyncIterator[ProcessSamples]:
    """Sample the named processes every ``every_s`` seconds for as long as the block runs."""
    result = ProcessSamples(samples={name: [] for name in pids})

    async def sample() -> None:
        while True:
            for name, pid in pids.items():
                if (taken := _sample(pid)) is not None:
                    result.samples[name].append(taken)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(sample())
    try:
        yield result
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for name, pid in pids.items():
            if (peak := _status_mb(pid, "VmHWM")) is not None:
                result.peak_mb[name] = peak


def _cpu_at(samples: list[Sample], at_ms: int) -> float:
    """CPU seconds the process had used at ``at_ms``: linear between the samples either side of it,
    the first or the last sample's outside them."""
    if at_ms <= samples[0].at_ms:
        return samples[0].cpu_s
    for before, after in itertools.pairwise(samples):
        if at_ms <= after.at_ms:
            part = (at_ms - before.at_ms) / (after.at_ms - before.at_ms) if after.at_ms > before.at_ms else 1.0
            return before.cpu_s + part * (after.cpu_s - before.cpu_s)
    return samples[-1].cpu_s


def _between(samples: list[Sample], start_ms: int, end_ms: int) -> list[Sample]:
    return [sample for sample in samples if start_ms <= sample.at_ms <= end_ms]


def _sample(pid: int) -> Sample | None:
    rss = _status_mb(pid, "VmRSS")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if rss is None:
        return None
    return Sample(int(time.time() * 1000), rss, (int(fields[11]) + int(fields[12])) / _TICKS)


def _status_mb(pid: int, key: str) -> float | None:
    """One ``kB`` field of the process's status in MB; None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
