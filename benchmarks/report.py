"""What every benchmark reports: medians and percentiles, and one JSON line per benchmark.

Each line is printed and appended to ``benchmarks/results.jsonl`` with the machine (cores, load
average when the benchmark started), the date and the versions of Python, Faust, aiokafka and Kafka,
so a figure is never read without what it was measured on.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pipeline.settings import Settings

RESULTS_FILE = Path(__file__).resolve().parent / "results.jsonl"

Results = dict[str, dict[str, Any]]  # benchmark name -> its JSON line, decoded


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and p99 of ``values`` (None where there are fewer than two)."""
    if len(values) < 2:
        return {"p50": None, "p95": None, "p99": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1)}


def medians_of(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The median of every numeric field over ``runs`` (nested dicts field by field; a field missing
    from a run is left out of that field's median)."""
    merged: dict[str, Any] = {}
    for name, first in runs[0].items():
        present = [run[name] for run in runs if run.get(name) is not None]
        if isinstance(first, Mapping):
            merged[name] = medians_of(present)
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            merged[name] = median(present) if present else None
    return merged


def environment(kafka: str) -> dict[str, Any]:
    """The machine and the versions a result was measured with."""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "cpu": _cpu_model(), "load_avg_1m": os.getloadavg()[0]},
        "versions": {
            "python": platform.python_version(),
            "faust": version("faust-streaming"),
            "aiokafka": version("aiokafka"),
            "kafka": kafka,
        },
    }


def kafka_version(external: bool) -> str:
    """The local broker's version, or ``external`` for a cluster named by KAFKA_BOOTSTRAP_SERVERS."""
    return "external" if external else Settings().local_kafka.version


def emit(
    benchmark: str, params: Mapping[str, Any], result: Mapping[str, Any], env: Mapping[str, Any]
) -> dict[str, Any]:
    """Print the benchmark's JSON line and append it to the results file; return it, decoded."""
    line = json.dumps({"benchmark": benchmark, **env, "params": dict(params), **result})
    print(line, flush=True)
    with RESULTS_FILE.open("a") as results:
        results.write(line + "\n")
    decoded: dict[str, Any] = json.loads(line)
    return decoded


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
