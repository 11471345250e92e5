"""``contactsync demo --source postgres`` as a user runs it: a local Postgres, Kafka Connect with
Debezium, the simulators and a worker, reconciled against the table, with an exit status that says so."""

from __future__ import annotations

import json

import pytest

from tests.cli_runner import cli_env, run_cli

pytestmark = pytest.mark.kafka


def test_the_postgres_demo_reconciles_its_table_snapshot_and_changes_included(kafka_bootstrap: str) -> None:
    """A small run (the snapshot's rows, then inserts, updates and deletes) exits 0 with every row of
    the table at its platforms: 0 lost, 0 stale, every kind of Debezium event seen."""
    done = run_cli(cli_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap), "demo", "--source", "postgres", "--rows", "30",
                   "--changes", "120", "--rate", "40", "--json", timeout_s=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["reconciled"] and summary["lost"] == summary["stale"] == 0, summary
    assert summary["matched_at_providers"] == summary["expected_at_providers"] > 0, summary
    assert {"r", "c", "u", "d"} <= set(summary["captured_ops"]), summary
