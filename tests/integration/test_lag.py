"""Lag read from the real broker: the group's committed offsets against the log-end offsets."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.kafka.stage_inputs import stage_inputs
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.lag import LagSampler, lag_reader
from tests.cli_runner import cli_env, run_cli
from tests.kafka_offsets import commit_offsets, fill_partitions

pytestmark = pytest.mark.kafka

PROVIDERS = ("hubspot", "salesforce", "mailchimp")


async def _stage_with_known_lag(bootstrap: str, catalog: TopicCatalog, group: str) -> None:
    """contacts.validated (the transform stage's input): 7 + 3 + 2 messages, committed at 4, 3 and none."""
    await fill_partitions(bootstrap, catalog.validated, {0: 7, 1: 3, 2: 2})
    await commit_offsets(bootstrap, group, {(catalog.validated, 0): 4, (catalog.validated, 1): 3})


async def test_lag_per_partition_and_stage_matches_the_committed_offsets(kafka_bootstrap: str, catalog) -> None:
    """Each partition's lag is its end offset minus the group's commit (or minus the log start when it
    has none), and a stage's lag is the sum over its partitions."""
    group = f"lag-{uuid.uuid4().hex[:8]}"
    await _stage_with_known_lag(kafka_bootstrap, catalog, group)

    async with lag_reader(kafka_bootstrap, LagSampler(group), stage_inputs(catalog, PROVIDERS)) as reader:
        report = await reader.read()

    stages = {stage.stage: stage for stage in report.stages}
    transform = stages["transform"]
    assert [(p.partition, p.committed, p.end, p.lag) for p in transform.partitions[:4]] == [
        (0, 4, 7, 3), (1, 3, 3, 0), (2, None, 2, 2), (3, None, 0, 0),
    ]
    assert (transform.lag, transform.committed, transform.end) == (5, 7, 12)
    assert report.lag == 5 and all(s.lag == 0 for name, s in stages.items() if name != "transform")
    assert list(stages)[:4] == ["validate", "transform", "route", "dispatch-hubspot"] and "conflict" in stages


async def test_lag_command_prints_the_broker_figures_as_table_and_json(kafka_bootstrap: str, catalog) -> None:
    """`contactsync lag` needs no worker: its table and its JSON give the same figures as the broker."""
    group = f"lag-{uuid.uuid4().hex[:8]}"
    await _stage_with_known_lag(kafka_bootstrap, catalog, group)
    env = cli_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=catalog.prefix,
                  CONTACTSYNC_APP_ID=group)

    table = run_cli(env, "lag")
    as_json = run_cli(env, "lag", "--json")

    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith(f"group {group}: lag 5 at ")
    row = next(line for line in table.stdout.splitlines() if line.startswith("transform "))
    assert row.split() == ["transform", catalog.validated, "5", "7", "12"]
    stage = next(s for s in json.loads(as_json.stdout)["stages"] if s["stage"] == "transform")
    assert (stage["lag"], stage["committed"], stage["end"]) == (5, 7, 12)
    assert stage["partitions"][2] == {"partition": 2, "committed": None, "start": 0, "end": 2, "lag": 2}
