"""Faust's aiokafka transport, changed so that the group commits an offset only once a stream
handled every message before it, and so that messages that went missing inside the worker are read
again.

Faust loses messages around rebalances and worker start-ups: its stream drops the messages it
fetched before a rebalance (or while flow control was suspended for one) and acknowledges them
anyway (``Stream._py_aiter``: ``do_ack or value is skipped_value``); its fetch loop counts offsets it
jumped over as handled (``Consumer._add_gap``); and its commit steps over one missing offset at the
committed position, and over any number of them while a partition has no commit yet
(``Consumer._new_offset``). Whatever the next owner of the partition finds committed, it starts
after.

Here:

* a message that reaches a stream is tracked before the agent sees it, a dropped one never is, so
  the consumer refuses to acknowledge untracked messages;
* the commit is one past the unbroken run of acknowledged offsets that starts at the committed
  offset (for a partition never committed, at its log start): a message nobody handled holds it;
* an offset counts as missing from the log (a transaction marker, a compacted or deleted record) only
  when a read straight from the broker shows the log goes on past it; a read it does not answer in
  time counts nothing;
* while the app rebalances no stage partition is fetched, and a fetch never overlaps a seek
  (``_getmany``): a fetch during recovery's seeks was handled twice; a never-committed partition's
  log start is learned when recovery seeks (``perform_seek``), so its work commits from the start;
* a partition whose commit is held that way, at the same offset for ``STUCK_AFTER_S``, is read again
  from its commit. Held means: the message at the commit is not acknowledged (so the next commit is
  not about to pass it), and is neither queued nor in flight. What was handled after it is handled
  twice, which every stage tolerates (the version guard settles repeated deliveries as superseded).
  (A message the fetch has not delivered yet counts as held too: after a worker restart Faust's
  fetch can leave a partition undelivered, and only this read gets it going again.)

And the fetched messages of a stage's partitions go to the stage's inbox, a list per partition and
fetch, instead of one by one through Faust's conductor and stream (``pipeline.kafka.inbox``); the
rows of a standby table copy go to its table a fetch at a time (``pipeline.kafka.standby_rows``).

Used through the ``faust.transports`` entry point (pyproject.toml) as the ``contactsync://`` scheme.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, cast

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.transport.conductor import Conductor
from faust.transport.drivers import aiokafka
from faust.types import TP, Message
from mode import Service

from pipeline.errors import ConfigError
from pipeline.kafka.inbox import Inbox
from pipeline.kafka.standby_rows import apply_standby_rows, holds_as_standby

log = structlog.get_logger(__name__)

STUCK_AFTER_S = 10.0
# What one fetch response may bring of all the partitions asked for together. aiokafka's default is
# 50 MiB and Faust does not pass it: with ~40 partitions at 256 KiB each (``consumer_max_fetch_size``)
# a response could be 10 MiB, held twice while it is parsed (the response, then each partition's
# copy) on top of what the stages have not taken yet, and it is a worker's peak RSS that such a
# moment sets. The broker still returns the first batch whatever its size, so a larger message
# comes whole. Not a setting: nothing an operator sees depends on it (see benchmarks/README.md,
# "A fetch capped at 1 MiB").
FETCH_MAX_BYTES = 1024 * 1024
SETTLING_POLL_S = 0.1  # how often a fetch with nothing it may ask for looks again while a rebalance settles


class InboxRoutes(NamedTuple):
    by_agent: dict[tuple[str, ...], Inbox]  # the topics an agent reads -> its inbox
    by_topic: dict[str, list[Inbox]]  # a topic -> the inboxes of the agents that read it


class Consumer(aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log_start: dict[TP, int] = {}  # where a partition with no commit yet starts
        self._stuck_since: dict[TP, tuple[int, float]] = {}  # commit offset held, and since when
        self._log_reader: AIOKafkaConsumer | None = None
        self._inbox_routes: InboxRoutes | None = None
        self._positions = asyncio.Lock()  # held by a fetch and by a seek: they never overlap (see _getmany)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def inbox(self, topics: Iterable[str]) -> Inbox:
        """The inbox of the agent that reads ``topics``: what the fetch got of them waits there,
        from the first fetch on, whether or not the agent takes it yet."""
        return self._routes().by_agent[tuple(topics)]

    def _routes(self) -> InboxRoutes:
        """Every agent of the app takes its input through an inbox (``pipeline.kafka.batches``):
        one per agent, by the topics it reads; and the inboxes each topic's messages go to."""
        if self._inbox_routes is None:
            by_agent: dict[tuple[str, ...], Inbox] = {}
            by_topic: dict[str, list[Inbox]] = {}
            for agent in self.app.agents.values():
                topics = tuple(cast(Any, agent.channel).topics)
                if topics in by_agent:
                    raise ConfigError(f"two agents read {', '.join(topics)}; each agent's topics must be its own")
                inbox = by_agent[topics] = Inbox(self.app.conf.stream_buffer_maxsize, self.on_buffer_full,
                                                 self.on_buffer_drop)
                self.app.flow_control.manage_queue(cast(Any, inbox))  # cleared when flow resumes, as Faust's queues
                for topic in topics:
                    by_topic.setdefault(topic, []).append(inbox)
            self._inbox_routes = InboxRoutes(by_agent, by_topic)
        return self._inbox_routes

    async def _wait_next_records(self, timeout: float) -> tuple[Mapping[TP, list[Any]] | None, set[TP] | None]:
        records, active = await super()._wait_next_records(timeout)
        if records and self.flow_active and not self.should_stop:
            records = await self._hand_to_inboxes(records)
        return records, active

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Mapping[TP, list[Any]]:
        """Fetch, but never while a seek moves the positions, and nothing of the stages' partitions
        while a rebalance sets them.

        After an assignment Faust's recovery resumes the stages' partitions, then seeks each to its
        commit (``perform_seek``: a round trip per partition, the read offsets set after the last),
        and only then clears the stages' queues; Faust's getmany also seeks when it fetched while
        flow was stopped, so two seeks can run at once. A fetch in between moved a partition past
        records whose read offset the seek then set back (the next fetch looked like a jump, and the
        stuck-partition check read everything after it again), or handed the stages records that
        were fetched again after the seek, or that the clearing dropped after the fetch had moved
        past them: each handled twice (issue 12). So while the app rebalances the stages'
        partitions are not asked for, what a fetch begun before brought of them is put back, and
        a fetch and a seek take turns."""
        asked = active_partitions
        if active_partitions is not None and self.app.rebalancing:
            asked = {tp for tp in active_partitions if not self._read_by_stage(tp)}
            if not asked:  # an empty set would fetch every partition
                await self.sleep(min(timeout, SETTLING_POLL_S))
                return {}
        async with self._positions:
            records = await super()._getmany(asked, timeout)
            return await self._put_back_unsettled(records, active_partitions)

    async def _put_back_unsettled(
        self, records: Mapping[TP, list[Any]], active: set[TP] | None
    ) -> Mapping[TP, list[Any]]:
        """``records`` without those of a stage partition that is being set up by a rebalance, or
        paused since the fetch began; the fetch of those is sought back to the first of them, so
        nothing is skipped (Faust's own getmany drops them with the fetch moved past them)."""
        rebalancing = self.app.rebalancing
        unsettled = {
            tp: tp_records[0].offset for tp, tp_records in records.items()
            if tp_records and self._read_by_stage(tp) and (
                rebalancing or (active is not None and tp not in active and tp not in self._buffered_partitions)
            )
        }  # fmt: skip
        if not unsettled:
            return records
        assigned = self.assignment()
        put_back = {tp: offset for tp, offset in unsettled.items() if tp in assigned}  # the rest is no longer ours
        if put_back:
            log.info("fetched records put back until the partitions settle", partitions=len(put_back))
            await self.seek_wait(put_back)  # through the consumer's own thread, as in _unstick
        return {tp: tp_records for tp, tp_records in records.items() if tp not in unsettled}

    async def perform_seek(self) -> None:
        """Seek every partition to its commit, and learn where the never-committed ones start: the
        commit of what is handled from now on needs that base, and one learned only by the next
        stuck-partition round (up to ``STUCK_AFTER_S / 4`` later) left the work of a worker's first
        seconds uncommitted when a second worker joined then, so all of it was handled again."""
        async with self._positions:
            await super().perform_seek()
            try:
                await self._learn_log_starts()
            except (KafkaError, TimeoutError) as exc:  # the stuck-partition round tries again
                log.warning("log starts not learned: Kafka did not answer", error_class=type(exc).__name__,
                            error=str(exc))

    def _read_by_stage(self, tp: TP) -> bool:
        return tp.topic in self._routes().by_topic

    async def _hand_to_inboxes(self, records: Mapping[TP, list[Any]]) -> dict[TP, list[Any]]:
        """Hand each stage partition's records to its stage's inbox, and a standby copy's rows to
        its table (``pipeline.kafka.standby_rows``); the rest is returned for Faust's own path.
        Read offsets as Faust's fetch loop keeps them (``_drain_messages``)."""
        inboxes_of = self._routes().by_topic
        rest: dict[TP, list[Any]] = {}
        for tp, tp_records in records.items():
            inboxes = inboxes_of.get(tp.topic)
            if not inboxes:  # a table's changelog: a standby copy's rows, or a recovery's
                if holds_as_standby(self.app, tp):
                    await apply_standby_rows(self.app, tp, await self._new_messages(tp, tp_records))
                else:
                    rest[tp] = tp_records
                continue
            messages = await self._new_messages(tp, tp_records)
            if not messages:
                continue
            if len(inboxes) > 1:  # acknowledged once every stage reading the topic acknowledged it
                for message in messages:
                    message.incref(len(inboxes))
            for inbox in inboxes:
                inbox.put(TP(tp.topic, tp.partition), messages)  # the fetch keys by aiokafka's own class
        return rest

    async def _new_messages(self, tp: TP, records: Iterable[Any]) -> list[Message]:
        """``records`` as Faust's messages, without those before the read offset (read already)."""
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        read = self._read_offset[tp]
        to_message = self._to_message
        messages: list[Message] = [to_message(tp, record) for record in records]
        if read is not None:
            messages = [message for message in messages if message.offset >= read]
        if not messages:
            return messages
        if read and messages[-1].offset - read > len(messages) and self.app.topics.acks_enabled_for(tp.topic):
            before = read
            for message in messages:
                if message.offset - before > 1:
                    await self._add_gap(tp, before + 1, message.offset)
                before = message.offset
        self._read_offset[tp] = messages[-1].offset
        return messages

    def ack(self, message: Message) -> bool:
        return message.tracked and super().ack(message)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust would count the offsets its fetch jumped over as handled; here they hold the
        commit until the broker shows they are not in the log (see ``_read_stuck_partitions_again``)."""
        log.warning("offsets skipped by the fetch", topic=tp.topic, partition=tp.partition,
                    first=offset_from, last=offset_to)

    def _new_offset(self, tp: TP) -> int | None:
        base = self._commit_base(tp)
        if base is None:
            return None
        acked, missing = self._acked[tp], self._gap[tp]
        done = set(acked)
        offset = base
        while offset in done or missing.overlaps(offset):
            offset += 1
        if offset == base:
            return None
        acked[:] = [later for later in acked if later >= offset]
        self._acked_index[tp] = {later for later in self._acked_index[tp] if later >= offset}
        missing.chop(0, offset)
        return offset

    def _commit_base(self, tp: TP) -> int | None:
        committed = self._committed_offset[tp]
        return committed if committed is not None else self._log_start.get(tp)

    @Service.task
    async def _read_stuck_partitions_again(self) -> None:
        async for _ in self.itertimer(STUCK_AFTER_S / 4, name="stuck-partitions"):
            if not self.flow_active or self.app.rebalancing:
                self._stuck_since.clear()
                continue
            try:
                await self._learn_log_starts()
                for tp in self._stuck_for_long(time.monotonic()):
                    del self._stuck_since[tp]
                    await self._unstick(tp)
            except (KafkaError, TimeoutError) as exc:  # the broker is away: this round is lost, not the worker
                log.warning("stuck-partition check skipped: Kafka did not answer",
                            error_class=type(exc).__name__, error=str(exc))

    async def _learn_log_starts(self) -> None:
        unknown = [
            tp for tp in self.assignment()
            if self._committed_offset[tp] is None and tp not in self._log_start
            and self.app.topics.acks_enabled_for(tp.topic)
        ]
        if unknown:
            self._log_start.update(await self.earliest_offsets(*unknown))

    def _stuck_for_long(self, now: float) -> list[TP]:
        """Partitions whose commit has been held at the same offset for ``STUCK_AFTER_S``."""
        held = self._stuck_now()
        self._stuck_since = {
            tp: since if (since := self._stuck_since.get(tp)) is not None and since[0] == base else (base, now)
            for tp, base in held.items()
        }
        return [tp for tp, (_, since) in self._stuck_since.items() if now - since >= STUCK_AFTER_S]

    def _stuck_now(self) -> dict[TP, int]:
        """Partitions whose commit waits for a message that is neither queued, in flight nor
        acknowledged, with that message's offset: later ones were acknowledged, or nothing of the
        partition is queued or in flight at all."""
        in_flight = {(message.tp, message.offset) for message in self._unacked_messages if not message.acked}
        busy = {tp for tp, _ in in_flight}
        stuck = {}
        for tp in self.assignment():
            base = self._commit_base(tp)
            if (
                base is None
                or (tp, base) in in_flight
                or base in self._acked_index.get(tp, ())  # the next commit passes it
                or tp in self._paused_partitions
                or not self.app.topics.acks_enabled_for(tp.topic)
                or (end := self.highwater(tp)) is None  # unknown until a fetch answers (after a broker restart)
                or end <= base
            ):
                continue
            acked = self._acked.get(tp)
            idle = (
                tp not in busy
                and all(channel.queue.empty() for channel in cast(Conductor, self.app.topics)._tp_index.get(tp, ()))
                and not any(inbox.holds(tp) for inbox in self._routes().by_topic.get(tp.topic, ()))
            )
            if idle or (acked and min(acked) > base):
                stuck[tp] = base
        return stuck

    async def _unstick(self, tp: TP) -> None:
        """Read ``tp`` again from its commit base, or count the offsets from there to where the log
        goes on as missing from it. Nothing is counted on a read the broker did not answer in time:
        that would let the commit pass records that are there."""
        base = self._commit_base(tp)
        assert base is not None
        goes_on = await next_offset_from(await self._reader(), TopicPartition(tp.topic, tp.partition), base)
        if goes_on is None:  # the next round asks again
            return
        if goes_on > base:
            log.warning("offsets missing from the log", topic=tp.topic, partition=tp.partition,
                        first=base, last=goes_on - 1)
            self._gap[tp].addi(base, goes_on)
            return
        log.warning("reading a stuck partition again", topic=tp.topic, partition=tp.partition,
                    offset=base, end=self.highwater(tp))
        # Through the consumer's own thread: aiokafka's fetcher is not thread-safe, and ``seek``
        # changes it from this one (a two-worker drain crashed its fetcher with a KeyError in
        # ``fetched_records`` 13 ms after such a seek).
        async with self._positions:
            await self.seek_wait({tp: base})

    async def _reader(self) -> AIOKafkaConsumer:
        if self._log_reader is None:
            transport = self.transport
            reader = log_reader(
                aiokafka.server_list(transport.url, cast(Transport, transport).default_port),
                f"{self.app.conf.id}-log-reader",
            )
            try:
                await reader.start()
            except KafkaError:
                await reader.stop()
                raise
            self._log_reader = reader
        return self._log_reader

    async def on_stop(self) -> None:
        if self._log_reader is not None:
            await self._log_reader.stop()
        await super().on_stop()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Commit what the stages handled before Faust forgets it. Faust drops a revoked
        partition's acknowledgements first and waits for the stages after, committing nothing
        (faust-streaming#502): the partition's next owner, and this worker after the rebalance
        too (recovery seeks every partition to its commit), would handle all of it again. So the
        stages stop taking batches, the ones in flight finish, and the commit goes out first."""
        if self.assignment():
            self.app.flow_control.suspend()
            await self.wait_empty()
        for tp in revoked:
            self._log_start.pop(tp, None)
        await super().on_partitions_revoked(revoked)


class ConsumerThread(aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: aiokafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_bytes = FETCH_MAX_BYTES  # Faust passes no such argument; read when it starts
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its commit, all commits asked for in one request:
        aiokafka's own ``seek_to_committed`` asks once per partition, one after the other, and a
        worker holds about 100 (1.7 s of a worker's start on an idle machine, 2026-12-07)."""
        return cast(Mapping[TP, int], await self.call_thread(seek_all_to_committed, self._ensure_consumer()))


class Transport(aiokafka.Transport):
    Consumer = Consumer


async def seek_all_to_committed(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int | None]:
    """What aiokafka's ``AIOKafkaConsumer.seek_to_committed()`` does for every assigned partition
    (the commit, None for none; a partition with a commit above 0 sought to it), in one
    OffsetFetch request instead of one per partition."""
    partitions = consumer._subscription.assigned_partitions()
    answers = await consumer._coordinator.fetch_committed_offsets(partitions)
    committed: dict[TopicPartition, int | None] = {}
    for tp in partitions:
        answer = answers.get(tp)
        offset = None if answer is None or answer.offset == -1 else answer.offset
        committed[tp] = offset
        if offset and offset > 0:
            consumer._fetcher.seek_to(tp, offset)
    return committed


def log_reader(bootstrap_servers: str | list[str], client_id: str) -> AIOKafkaConsumer:
    """A consumer of no group for ``next_offset_from`` (not started). An offset the log no longer
    holds reads from where it starts now."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, client_id=client_id, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def next_offset_from(reader: AIOKafkaConsumer, partition: TopicPartition, offset: int) -> int | None:
    """Where the log goes on at ``offset``: the first record at or after it; when a read brings no
    record, how far it came (past a transaction's markers, which take offsets but are no records, or
    from a deleted offset to where the log starts now); None when the broker gave nothing within 5 s."""
    reader.assign([partition])
    reader.seek(partition, offset)
    records = await reader.getmany(partition, timeout_ms=5000, max_records=1)
    first: int | None = min((record.offset for record in records.get(partition, [])), default=None)
    if first is not None:
        return first
    reached: int = await asyncio.wait_for(reader.position(partition), 5)
    return reached if reached > offset else None
