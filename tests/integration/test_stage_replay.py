"""`contactsync replay` on the real broker: a stage's committed offsets move to an offset or a time,
and never while the group has members unless forced."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.kafka.stage_inputs import stage_inputs
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.lag import LagSampler, lag_reader
from tests.cli_runner import CONTACTSYNC, cli_env, run_cli
from tests.kafka_offsets import commit_offsets, fill_partitions

pytestmark = pytest.mark.kafka

T0_MS = 1_700_000_000_000  # message n of a partition is stamped T0 + n seconds


async def _committed(bootstrap: str, catalog: TopicCatalog, group: str, stage: str) -> list[int | None]:
    async with lag_reader(bootstrap, LagSampler(group), stage_inputs(catalog, ())) as reader:
        report = await reader.read()
    return [p.committed for s in report.stages if s.stage == stage for p in s.partitions]


async def _group_done_with_transform(bootstrap: str, catalog: TopicCatalog) -> tuple[str, dict[str, str]]:
    """A group that has read all of contacts.validated: 6 messages in partition 0, 2 in partition 1."""
    group = f"replay-{uuid.uuid4().hex[:8]}"
    await fill_partitions(bootstrap, catalog.validated, {0: 6, 1: 2}, first_timestamp_ms=T0_MS)
    await commit_offsets(bootstrap, group, {(catalog.validated, 0): 6, (catalog.validated, 1): 2})
    return group, cli_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=catalog.prefix,
                          CONTACTSYNC_APP_ID=group)


async def test_replay_moves_the_stage_offsets_to_an_offset_or_a_time(kafka_bootstrap: str, catalog) -> None:
    """--from 4 commits offset 4 (held within each partition's log), --from a time commits the first
    message at or after it, and only the given --partition moves."""
    group, env = await _group_done_with_transform(kafka_bootstrap, catalog)

    to_offset = run_cli(env, "replay", "--stage", "transform", "--from", "4")
    after_offset = await _committed(kafka_bootstrap, catalog, group, "transform")
    to_time = run_cli(env, "replay", "--stage", "transform", "--from", "2023-11-14T22:13:22Z", "--partition", "0")
    after_time = await _committed(kafka_bootstrap, catalog, group, "transform")

    assert to_offset.returncode == 0, to_offset.stderr
    assert f"{catalog.validated}[0]: 6 -> 4" in to_offset.stdout.splitlines()
    assert after_offset == [4, 2, 0, 0, 0, 0]
    assert to_time.returncode == 0, to_time.stderr
    assert after_time == [2, 2, 0, 0, 0, 0]  # T0 is 22:13:20Z: the message of T0 + 2 s is offset 2


async def test_replay_is_refused_while_the_group_has_members_unless_forced(kafka_bootstrap: str, catalog) -> None:
    """With a member in the group, replay exits 2 with one line and moves nothing; with --force it
    waits until the member has left and then resets."""
    group, env = await _group_done_with_transform(kafka_bootstrap, catalog)
    member = AIOKafkaConsumer(catalog.validated, bootstrap_servers=kafka_bootstrap, group_id=group,
                              enable_auto_commit=False)
    await member.start()
    try:
        await member.getmany(timeout_ms=2000)  # joined, partitions assigned
        refused = run_cli(env, "replay", "--stage", "transform", "--from", "earliest")
        forced = await asyncio.create_subprocess_exec(
            CONTACTSYNC, "replay", "--stage", "transform", "--from", "earliest", "--force", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(3)
    finally:
        await member.stop()
    _, err = await asyncio.wait_for(forced.communicate(), timeout=60)

    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"group {group} has 1 active member(s)" in refused.stderr
    assert forced.returncode == 0, err.decode()
    assert await _committed(kafka_bootstrap, catalog, group, "transform") == [0, 0, 0, 0, 0, 0]
