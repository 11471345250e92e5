"""A benchmark stopped midway (kill, Ctrl-C) leaves nothing running: its broker, simulators and
workers run in sessions of their own, and would otherwise hold the machine after it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from pipeline.dev.jvm_process import child_pids, cmdline
from pipeline.settings import REPO_ROOT


def _running(pid: int) -> bool:
    return bool(cmdline(pid))


def test_a_benchmark_killed_while_its_workers_run_stops_every_process_it_started() -> None:
    bench = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "benchmarks.drain", "--backlog", "3000", "--records", "500"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        started: set[int] = set()
        while not any(b"worker" in cmdline(pid) for pid in started):
            assert bench.poll() is None, bench.stderr.read().decode() if bench.stderr else ""
            assert time.monotonic() < deadline, "the benchmark started no worker in 300 s"
            started |= set(child_pids(bench.pid))
            time.sleep(0.2)
        started |= set(child_pids(bench.pid))
        assert len(started) >= 3  # the broker, the simulators, a worker

        bench.send_signal(signal.SIGTERM)
        returncode = bench.wait(180)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()

    assert returncode == 128 + signal.SIGTERM
    assert [pid for pid in started if _running(pid)] == []
