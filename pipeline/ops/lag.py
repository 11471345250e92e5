"""Consumer lag of the app's group, per stage and partition, read from the broker itself.

Committed offsets come from the group coordinator (OffsetFetch), log-start and log-end offsets from
the partition leaders (ListOffsets), so a stalled worker cannot freeze the figures the way Faust's
own monitor does. Kafka does not say when a group last committed, so ``LagSampler`` notes when the
committed offsets it samples change: ages are known to within one sampling interval, and unknown
(None) until the first change is seen.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.kafka.clients import admin_client, groupless_consumer
from pipeline.kafka.stage_inputs import StageInput

HISTORY_S = 600.0  # how far back the lag chart goes


@dataclass(frozen=True)
class PartitionLag:
    stage: str
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing here
    start: int  # the log-start offset (older messages are gone)
    end: int  # the log-end offset: the next message's offset

    @property
    def lag(self) -> int:
        """Messages the group has still to process; without a commit it starts at the log start."""
        position = self.start if self.committed is None else max(self.committed, self.start)
        return max(0, self.end - position)


@dataclass(frozen=True)
class StageLag:
    stage: str
    topic: str
    partitions: tuple[PartitionLag, ...]
    last_commit_age_s: float | None

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def committed(self) -> int:
        return sum(p.committed or 0 for p in self.partitions)

    @property
    def end(self) -> int:
        return sum(p.end for p in self.partitions)


@dataclass(frozen=True)
class LagReport:
    group: str
    at: float  # epoch seconds of the reading
    observed_for_s: float  # how long commits have been watched: ages beyond it are unknown
    stages: tuple[StageLag, ...]

    @property
    def lag(self) -> int:
        return sum(stage.lag for stage in self.stages)

    @property
    def last_commit_age_s(self) -> float | None:
        """Since the group last committed anywhere (None: no commit seen while watching)."""
        ages = [s.last_commit_age_s for s in self.stages if s.last_commit_age_s is not None]
        return min(ages) if ages else None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "at_ms": int(self.at * 1000),
            "observed_for_s": round(self.observed_for_s, 1),
            "lag": self.lag,
            "last_commit_age_s": _rounded(self.last_commit_age_s),
            "stages": [
                {
                    "stage": s.stage, "topic": s.topic, "lag": s.lag, "committed": s.committed, "end": s.end,
                    "last_commit_age_s": _rounded(s.last_commit_age_s),
                    "partitions": [
                        {"partition": p.partition, "committed": p.committed, "start": p.start, "end": p.end,
                         "lag": p.lag}
                        for p in s.partitions
                    ],
                }
                for s in self.stages
            ],
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


async def read_partition_lags(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, inputs: Sequence[StageInput]
) -> list[PartitionLag]:
    """One reading of every stage input partition: the group's committed offset and the log bounds.

    ``consumer`` must have the partitions assigned (``lag_reader`` does it, paused), or it learns
    their leaders one topic per metadata round trip.
    """
    stage_of = {i.topic: i.stage for i in inputs}
    partitions = _partitions(inputs)
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    starts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    return [
        PartitionLag(
            stage=stage_of[tp.topic], topic=tp.topic, partition=tp.partition,
            committed=_known(committed.get(tp)), start=starts[tp], end=ends[tp],
        )
        for tp in partitions
    ]


def _partitions(inputs: Sequence[StageInput]) -> list[TopicPartition]:
    return [TopicPartition(i.topic, p) for i in inputs for p in range(i.partitions)]


def _known(offset: Any) -> int | None:
    return None if offset is None or offset.offset < 0 else int(offset.offset)


class LagSampler:
    """Turns successive readings into reports: commit ages per stage, and lag history for charts."""

    def __init__(self, group: str, history_s: float = HISTORY_S) -> None:
        self.group = group
        self._history_s = history_s
        self._committed: dict[tuple[str, int], int | None] = {}
        self._changed_at: dict[str, float] = {}
        self._first_at: float | None = None
        self.history: deque[tuple[float, dict[str, int]]] = deque()
        self.latest: LagReport | None = None

    def observe(self, readings: Iterable[PartitionLag], now: float | None = None) -> LagReport:
        at = time.time() if now is None else now
        first = self._first_at is None
        self._first_at = at if self._first_at is None else self._first_at
        by_stage: dict[str, list[PartitionLag]] = {}
        for reading in readings:
            key = (reading.topic, reading.partition)
            if not first and self._committed.get(key) != reading.committed:
                self._changed_at[reading.stage] = at
            self._committed[key] = reading.committed
            by_stage.setdefault(reading.stage, []).append(reading)
        stages = tuple(
            StageLag(stage, parts[0].topic, tuple(parts),
                     at - self._changed_at[stage] if stage in self._changed_at else None)
            for stage, parts in by_stage.items()
        )
        report = LagReport(self.group, at, at - self._first_at, stages)
        self._remember(report)
        return report

    def _remember(self, report: LagReport) -> None:
        self.latest = report
        self.history.append((report.at, {stage.stage: stage.lag for stage in report.stages}))
        while self.history and self.history[0][0] < report.at - self._history_s:
            self.history.popleft()


@asynccontextmanager
async def lag_reader(
    bootstrap: str, sampler: LagSampler, inputs: Sequence[StageInput]
) -> AsyncIterator[LagReader]:
    """Connections to read ``sampler``'s group lag with, open for the block."""
    async with admin_client(bootstrap, "contactsync-lag") as admin, \
            groupless_consumer(bootstrap, "contactsync-lag") as consumer:
        partitions = _partitions(inputs)
        consumer.assign(partitions)  # to learn every leader in one metadata request
        consumer.pause(*partitions)  # and never fetch a message
        yield LagReader(admin, consumer, sampler, inputs)


@dataclass(frozen=True)
class LagReader:
    admin: AIOKafkaAdminClient
    consumer: AIOKafkaConsumer
    sampler: LagSampler
    inputs: Sequence[StageInput]

    async def read(self) -> LagReport:
        readings = await read_partition_lags(self.admin, self.consumer, self.sampler.group, self.inputs)
        return self.sampler.observe(readings)
