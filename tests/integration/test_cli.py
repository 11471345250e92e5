"""The contactsync kafka and topics commands, run as a user runs them (a subprocess each)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.dev.local_kafka import with_free_ports
from pipeline.settings import Settings
from tests.cli_runner import cli_env as _env
from tests.cli_runner import run_cli as _run


def test_help_says_what_the_command_is_for() -> None:
    """contactsync --help opens with what the tool does, not a developer's note about its modules."""
    done = _run(_env(), "--help")
    assert done.returncode == 0, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert "Keep HubSpot, Salesforce and Mailchimp in sync with a contacts database." in lines
    assert "module" not in done.stdout


def test_kafka_start_twice_then_stop_leaves_no_process(tmp_path: Path) -> None:
    """A second start reports the running broker instead of starting another, and stop ends it for good."""
    local = with_free_ports(Settings().local_kafka)
    env = _env(
        CONTACTSYNC_LOCAL_KAFKA__CACHE_DIR=str(local.cache_dir),
        CONTACTSYNC_LOCAL_KAFKA__RUN_DIR=str(tmp_path / "run"),
        CONTACTSYNC_LOCAL_KAFKA__PORT=str(local.port),
        CONTACTSYNC_LOCAL_KAFKA__CONTROLLER_PORT=str(local.controller_port),
    )
    address = f"127.0.0.1:{local.port}"

    first = _run(env, "kafka", "start")
    assert first.returncode == 0, first.stderr
    pid = int((tmp_path / "run" / "kafka.pid").read_text())
    try:
        assert f"Kafka started at {address} (pid {pid}" in first.stdout
        second = _run(env, "kafka", "start")
        assert second.returncode == 0, second.stderr
        assert f"Kafka already running at {address} (pid {pid}" in second.stdout
        assert _run(env, "kafka", "status").stdout.startswith(f"Kafka is up at {address}")
    finally:
        stopped = _run(env, "kafka", "stop")

    assert stopped.returncode == 0 and stopped.stdout.startswith("Kafka stopped")
    assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()
    down = _run(env, "kafka", "status")
    assert down.returncode == 1 and down.stdout.startswith("Kafka is down")


def test_missing_java_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    """Without java on the PATH, start fails with exit 2 and one stderr line naming the package to install."""
    env = _env(PATH=str(Path(sys.executable).parent), CONTACTSYNC_LOCAL_KAFKA__RUN_DIR=str(tmp_path))

    done = _run(env, "kafka", "start")

    assert done.returncode == 2
    assert done.stderr == "contactsync: java not found: install OpenJDK 17 (apt-get install openjdk-17-jre-headless)\n"


@pytest.mark.kafka
def test_topics_commands_report_and_fix_drift(kafka_bootstrap: str, topic_prefix: str) -> None:
    """topics check exits 1 while topics are missing, apply creates them, and check then exits 0."""
    env = _env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=topic_prefix)

    before = _run(env, "topics", "check")
    applied = _run(env, "topics", "apply")
    after = _run(env, "topics", "check")
    listed = _run(env, "topics", "list")

    assert before.returncode == 1 and f"drift: {topic_prefix}contacts.cdc: missing" in before.stdout
    assert applied.returncode == 0 and f"created {topic_prefix}contacts.dlq" in applied.stdout
    assert after.returncode == 0 and after.stdout.startswith("no drift")
    assert f"{topic_prefix}contacts.cdc  partitions=6" in listed.stdout and "missing" not in listed.stdout


def test_unreachable_broker_is_one_line(topic_prefix: str) -> None:
    """topics check against a port where no broker listens fails with exit 2 and one stderr line."""
    port = with_free_ports(Settings().local_kafka).port
    env = _env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", CONTACTSYNC_KAFKA__TOPIC_PREFIX=topic_prefix)

    done = _run(env, "topics", "check")

    assert done.returncode == 2
    assert done.stderr.startswith(f"contactsync: cannot reach Kafka at 127.0.0.1:{port}")
    assert done.stderr.count("\n") == 1
