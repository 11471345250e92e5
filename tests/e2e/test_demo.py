"""``contactsync demo``, the README's first command, run as a user runs it (smaller)."""

from __future__ import annotations

import json

from tests.cli_runner import cli_env, run_cli


def test_the_demo_reconciles_and_times_a_burst_and_a_steady_rate_apart(kafka_bootstrap: str) -> None:
    """The demo accounts for every change (exit 0, nothing lost or stale, the invalid ones
    dead-lettered) and reports two latencies: the burst's, a queue draining, and the steady rate's,
    one change on a pipeline that keeps up, taken from the changes offered after the burst."""
    args = ["demo", "--events", "300", "--records", "60", "--steady-rate", "20", "--steady-seconds", "3", "--json"]
    result = run_cli(cli_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap), *args, timeout_s=400)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["events"] == 300 + 60
    assert (summary["lost"], summary["stale"], summary["reconciled"]) == (0, 0, True), summary
    assert summary["dead_lettered"] == summary["invalid_events"] > 0
    assert summary["burst_latency_ms"]["p50"] is not None and summary["steady_latency_ms"]["p50"] is not None, summary
    assert summary["steady_rate_per_s"] == 20
