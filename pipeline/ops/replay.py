"""Moving a stage's committed offsets back (or forth) to a time or an offset, so it reads its input again.

Kafka takes offsets from outside a consumer group only while the group has no members, and a
running worker would overwrite them with its next commit anyway. So the reset is refused while the
group has members; ``force`` skips that check and retries until the broker accepts (for use while
the workers stop: a killed worker stays a member until its session times out).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, KafkaError

from pipeline.errors import ConfigError
from pipeline.kafka.clients import admin_client, groupless_consumer
from pipeline.kafka.stage_inputs import StageInput
from pipeline.kafka.topic_admin import require_topics

FORCE_WAIT_S = 60.0


@dataclass(frozen=True)
class ResetPoint:
    """Where to read from: ``offset`` in every partition (held within the log), or the first message
    at or after ``at_ms`` (the log end when there is none)."""

    offset: int | None = None
    at_ms: int | None = None


@dataclass(frozen=True)
class OffsetMove:
    partition: int
    committed: int | None  # None: the group had not committed here
    target: int


async def reset_stage_offsets(
    bootstrap: str, group: str, stage: StageInput, point: ResetPoint, partitions: list[int], *, force: bool
) -> list[OffsetMove]:
    """Commit ``point``'s offsets for ``group`` on the stage's input ``partitions``; what moved where."""
    await require_topics(bootstrap, stage.topic)
    chosen = [TopicPartition(stage.topic, p) for p in partitions]
    async with admin_client(bootstrap, "contactsync-replay") as admin, \
            groupless_consumer(bootstrap, "contactsync-replay", group_id=group) as consumer:
        members = await group_members(admin, group)
        if members and not force:
            raise ConfigError(
                f"group {group} has {members} active member(s): stop the workers first (a running worker "
                "would overwrite the reset), or pass --force to retry until they are gone"
            )
        consumer.assign(chosen)
        consumer.pause(*chosen)  # commit only, never fetch
        before = await admin.list_consumer_group_offsets(group, partitions=chosen)
        targets = await _targets(consumer, chosen, point)
        await _commit(consumer, targets, group, FORCE_WAIT_S if force else 0.0)
    return [
        OffsetMove(tp.partition, before[tp].offset if tp in before and before[tp].offset >= 0 else None, targets[tp])
        for tp in chosen
    ]


async def group_members(admin: AIOKafkaAdminClient, group: str) -> int:
    (response,) = await admin.describe_consumer_groups([group])
    return len(response.groups[0][5])  # (error, group, state, protocol type, protocol, members, ...)


async def _targets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], point: ResetPoint
) -> dict[TopicPartition, int]:
    starts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    if point.at_ms is not None:
        found = await consumer.offsets_for_times({tp: point.at_ms for tp in partitions})
        return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in partitions}
    offset = point.offset or 0
    return {tp: min(max(offset, starts[tp]), ends[tp]) for tp in partitions}


async def _commit(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int], group: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            await consumer.commit(targets)
            return
        except (CommitFailedError, KafkaError) as exc:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"the broker refused the reset for group {group} ({type(exc).__name__}): the group still "
                    "has members; stop the workers and try again"
                ) from None
        await asyncio.sleep(1.0)
