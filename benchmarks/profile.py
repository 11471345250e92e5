"""Where a worker's CPU goes: py-spy samples one worker through a throughput run.

py-spy (a dev tool: ``.venv/bin/pip install py-spy``, not a project dependency) records the worker
while it takes ``events`` changes from contacts.cdc to the providers, sampling only the thread that
holds the GIL (``--gil``), so shares are of the worker's Python CPU time. Reported: the share of
each part of the worker (a stage's agent, Faust's fetcher, the producer...), the functions that
cost the most themselves, and our own functions by the time spent in and under them. The raw
stacks stay in var/bench/ for a flame graph (flamegraph.pl or speedscope read them).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.changes import make_changes
from benchmarks.cli import run_alone
from benchmarks.harness import Bench, pipeline_run, simulators_config, unlimited_env
from benchmarks.report import Results, emit
from pipeline.dev.cdc_publisher import publish

OURS = ("pipeline/", "agents/", "schemas/")
ENTRY = "pipeline/cli/"  # contactsync worker: under every sample
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Options:
    events: int = 6_000
    records: int = 3_000
    rate_hz: int = 100
    top: int = 15
    seed: int = 7
    timeout_s: float = 600.0


async def run(bench: Bench, options: Options) -> Results:
    env = bench.environment()
    events, expected = make_changes(options.events, options.records, options.seed)
    async with pipeline_run(bench, "profile", simulators_config(), unlimited_env()) as pipeline:
        await pipeline.start_workers(1)
        stacks = pipeline.run_dir / "worker-0.pyspy.txt"
        command = [
            _py_spy(), "record", "--pid", str(pipeline.pids()["worker-0"]), "--gil",
            "--rate", str(options.rate_hz), "--format", "raw", "--output", str(stacks),
        ]  # fmt: skip
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            await publish(events, bench.bootstrap, pipeline.catalog.cdc)
            await pipeline.follow_outcomes(expected, options.timeout_s)
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(60)
    result = {**summarise(read_stacks(stacks), options.top), "stacks": str(stacks)}
    return {"profile": emit("profile", vars(options), result, env)}


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw output: one ``frame;frame;... count`` line per distinct stack, root first;
    each frame as ``file:function``."""
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame(text) for text in stack.split(";")]
        stacks.append((frames, int(count)))
    return stacks


def summarise(stacks: Iterable[tuple[list[str], int]], top: int) -> dict[str, Any]:
    """Shares (%) of the samples: by part of the worker, by own time (per function and per
    package), and our functions with what they call (the worker's entry point left out)."""
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        parts[_part(frames)] += count
        own[frames[-1]] += count
        packages[frames[-1].split("/", 1)[0].split(":", 1)[0]] += count
        for frame in set(frames):
            if frame.startswith(OURS) and not frame.startswith(ENTRY):
                ours[frame] += count

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {name: round(100 * n / total, 1) for name, n in counter.most_common(top)}

    return {
        "samples": total,
        "by_part": shares(parts),
        "self": shares(own),
        "self_by_package": shares(packages),
        "ours_inclusive": shares(ours),
    }


def _frame(text: str) -> str:
    match = _FRAME.match(text)
    return f"{match['file']}:{match['function']}" if match else text


def _part(frames: list[str]) -> str:
    """Which part of the worker a stack belongs to: the stage agent it runs under, else the task
    (or callback) the event loop was running."""
    for frame in frames:
        if frame.startswith("agents/"):
            return frame
    runs = [i for i, frame in enumerate(frames) if frame.endswith(("Handle._run", "Service._execute_task"))]
    return frames[runs[-1] + 1] if runs and runs[-1] + 1 < len(frames) else frames[-1]


def _py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


if __name__ == "__main__":
    run_alone("profile", Options, run, __doc__ or "")
