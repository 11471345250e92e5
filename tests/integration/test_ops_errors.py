"""The operations commands fail in one line, never a traceback, when their topics are missing."""

from __future__ import annotations

import pytest

from tests.cli_runner import cli_env, run_cli

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("command", [
    ["lag"], ["status", "42"], ["dlq", "list"], ["replay", "--stage", "route", "--from", "earliest"],
])
def test_a_missing_topic_is_one_line_naming_it_and_the_fix(kafka_bootstrap: str, topic_prefix: str,
                                                            command: list[str]) -> None:
    """Without `topics apply` on this prefix, the command exits 2 with one line naming a missing topic."""
    env = cli_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=topic_prefix)

    done = run_cli(env, *command)

    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"contactsync: topic {topic_prefix}contacts.")
    assert done.stderr.endswith("run `contactsync topics apply`\n")
