"""The dispatcher settling a batch: halving a refused batch, waiting out throttling, the version guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from pipeline.delivery.dispatcher import FLUSH_CHECK_S, Dispatcher
from pipeline.delivery.outcomes import OutcomeRecorder
from pipeline.delivery.rate_limit import ProviderLane
from pipeline.errors import DeliveryError, PermanentError, RetryableError, ThrottledError
from pipeline.kafka.dead_letters import now_ms
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.metrics import OutcomeCounts
from pipeline.providers import DeliveryResult
from pipeline.settings import HubSpotSettings, KafkaSettings
from pipeline.stages.dispatch import Pending
from schemas.dead_letter import DeadLetter
from schemas.dispatch import Delivered, DispatchRecord, Outcome
from schemas.headers import from_headers
from schemas.retry import RetryState
from tests.unit.kafka.doubles import APP, Event, MemoryTable, Message

pytestmark = pytest.mark.timeout(10)  # a dispatcher that never stops resending fails here, not at 300 s

CATALOG = TopicCatalog.load(KafkaSettings().topics_file, "t.")
DISPATCH = CATALOG.dispatch("hubspot")
CHANGELOG = CATALOG.delivered_version_changelog("hubspot")
STATUS_CHANGELOG = CATALOG.record_status_changelog

Answer = Callable[[Sequence[DispatchRecord]], list[DeliveryResult]]


def delivered(records: Sequence[DispatchRecord]) -> list[DeliveryResult]:
    return [DeliveryResult(r.record_id, provider_id=f"hs-{r.record_id}") for r in records]


class ScriptedProvider:
    """Answers each call with the next answer of its script (the last one repeats) and records the
    record ids of every call. Each call is first admitted by the lane, as the adapters' HTTP
    transport does, so a throttling pause holds it."""

    name = "hubspot"

    def __init__(
        self, lane: ProviderLane, *script: Answer, journal: list[str] | None = None, admitted: bool = True
    ) -> None:
        self.lane = lane
        self.admitted = admitted  # False: calls skip the lane (it stays saturated for the test)
        self.script = list(script)
        self.calls: list[list[str]] = []
        self.called_at: list[float] = []
        self.journal = journal if journal is not None else []

    async def deliver(self, batch: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        if self.admitted:
            await self.lane.admit_request()
        self.calls.append([r.record_id for r in batch])
        self.called_at.append(time.monotonic())
        self.journal.append("deliver")
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return answer(batch)

    async def aclose(self) -> None:
        pass


class WriteAhead:
    """Stands in for producing the guard rows before their requests; records what it got, and when."""

    def __init__(self, journal: list[str]) -> None:
        self.rows: list[Outgoing] = []
        self.journal = journal

    async def __call__(self, rows: list[Outgoing]) -> None:
        self.rows += rows
        self.journal.append("write_ahead")


def lane(**settings: Any) -> ProviderLane:
    return ProviderLane("hubspot", HubSpotSettings(rate_per_second=1000, burst=100, **settings))


def dispatcher(
    provider: ScriptedProvider, guard: MemoryTable | None = None, linger_s: float = 0.0
) -> tuple[Dispatcher, WriteAhead]:
    write_ahead = WriteAhead(provider.journal)
    table: Any = guard if guard is not None else MemoryTable(CHANGELOG)  # stands in for a faust.Table
    status: Any = MemoryTable(STATUS_CHANGELOG)
    recorder = OutcomeRecorder(CATALOG.outcomes, status, "dispatch", OutcomeCounts())
    return Dispatcher(provider, provider.lane, CATALOG, table, write_ahead, recorder, linger_s=linger_s), write_ahead


def pending(
    record_id: str, version: int = 1, *, offset: int = 0, op: str = "upsert", created: bool = False
) -> Pending[Event]:
    record = DispatchRecord(record_id=record_id, provider="hubspot", op=op, version=version,
                            source_ts_ms=0, captured_at_ms=0, key=record_id, payload={}, created=created)
    value = record.model_dump_json().encode()
    event = Event(Message(DISPATCH, partition=3, offset=offset, key=record_id.encode(), value=value))
    return Pending(event=event, record=record, retry=RetryState())


def outcomes(outgoing: list[Outgoing]) -> dict[tuple[str, int], tuple[str, int]]:
    """(record id, version) -> (state, attempts) of every outcome message; one each, never two."""
    found = [Outcome.model_validate_json(m.value or b"") for m in outgoing if m.topic == CATALOG.outcomes]
    settled = {(o.record_id, o.version): (o.state, o.attempts) for o in found}
    assert len(settled) == len(found), "a record settled twice"
    return settled


def guard_rows(outgoing: list[Outgoing]) -> dict[str, Delivered]:
    """The last guard row written per record id, from the changelog messages among ``outgoing``."""
    rows = [m for m in outgoing if m.topic == CHANGELOG]
    assert all(m.partition == 3 for m in rows)  # the partition of the event that wrote the row
    return {(m.key or b"").decode(): Delivered.model_validate_json(m.value or b"") for m in rows}


def on(topic: str, outgoing: list[Outgoing]) -> list[Outgoing]:
    return [m for m in outgoing if m.topic == topic]


def refusing(bad: str, alone: DeliveryError) -> Answer:
    """A provider that refuses every call holding ``bad`` with one shared error (a 400 for the call),
    and answers ``bad`` alone with ``alone``."""
    refusal = PermanentError("batch refused: invalid input", status=400)

    def answer(records: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        ids = [r.record_id for r in records]
        if ids == [bad]:
            return [DeliveryResult(bad, error=alone)]
        if bad in ids:
            return [DeliveryResult(r.record_id, error=refusal) for r in records]
        return delivered(records)

    return answer


async def test_a_refused_batch_is_halved_until_the_bad_record_is_dead_lettered() -> None:
    """A batch refused as a whole for one bad record is halved until that record stands alone: the
    others are delivered, the bad one is dead-lettered with the provider's reason."""
    provider = ScriptedProvider(lane(), refusing("c", PermanentError("email is invalid", status=400)))
    dispatch, _ = dispatcher(provider)
    batch = [pending(record_id, offset=offset) for offset, record_id in enumerate("abcd")]

    outgoing = await dispatch.dispatch(batch)

    assert provider.calls == [["a", "b", "c", "d"], ["a", "b"], ["c", "d"], ["c"], ["d"]]
    assert outcomes(outgoing) == {
        ("a", 1): ("delivered", 1), ("b", 1): ("delivered", 1),
        ("c", 1): ("dead_lettered", 1), ("d", 1): ("delivered", 1),
    }
    [letter] = on(CATALOG.dlq, outgoing)
    assert (letter.key, letter.value) == (b"c", batch[2].event.message.value)  # the original message
    story = from_headers(DeadLetter, letter.headers)
    assert (story.stage, story.error_class, story.error_message) == ("dispatch", "PermanentError", "email is invalid")
    assert (story.original_topic, story.original_partition, story.original_offset) == (DISPATCH, 3, 2)
    assert {r: row.version for r, row in guard_rows(outgoing).items()} == {"a": 1, "b": 1, "d": 1}
    assert [m for m in outgoing if m.topic.startswith("t.contacts.retry.")] == []


async def test_a_bad_record_alone_failing_retryably_goes_to_the_first_retry_tier() -> None:
    """When the isolated record's own answer is retryable (a 503), it waits in the first retry tier
    with one attempt used, and the rest of the batch is delivered."""
    provider = ScriptedProvider(lane(), refusing("b", RetryableError("503", status=503)))
    dispatch, _ = dispatcher(provider)
    began_ms = now_ms()

    outgoing = await dispatch.dispatch([pending("a"), pending("b"), pending("c")])

    assert provider.calls == [["a", "b", "c"], ["a"], ["b", "c"], ["b"], ["c"]]
    assert outcomes(outgoing) == {
        ("a", 1): ("delivered", 1), ("b", 1): ("retrying", 1), ("c", 1): ("delivered", 1),
    }
    [retry] = on(CATALOG.retry("hubspot", "5s"), outgoing)
    state = from_headers(RetryState, retry.headers)
    assert (retry.key, state.attempts, state.last_error) == (b"b", 1, "RetryableError: 503")
    assert state.not_before_ms >= began_ms + 5000
    assert on(CATALOG.dlq, outgoing) == []
    # the 503 may have been applied: the guard row written ahead keeps b's key as a stray to clean up
    held = dispatch.delivered_version.get(b"b")
    assert Delivered.model_validate_json(held) == Delivered(version=None, key=None, stray_keys=("b",), sent_version=1)


def throttling(*record_ids: str, retry_after: float) -> Answer:
    """Delivers every record but ``record_ids``, which are answered throttled."""

    def answer(records: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        throttled = ThrottledError("TEN_SECONDLY_ROLLING", status=429, retry_after=retry_after)
        return [
            DeliveryResult(r.record_id, error=throttled) if r.record_id in record_ids else delivered([r])[0]
            for r in records
        ]

    return answer


async def test_throttled_records_are_sent_again_after_the_pause_without_using_an_attempt() -> None:
    """Records the provider throttled wait out the lane's pause and go again, alone; every record is
    delivered on its first attempt."""
    provider = ScriptedProvider(lane(throttle_wait_max_s=1.0), throttling("b", "c", retry_after=0.1), delivered)
    dispatch, _ = dispatcher(provider)

    outgoing = await dispatch.dispatch([pending("a"), pending("b"), pending("c")])

    assert provider.calls == [["a", "b", "c"], ["b", "c"]]
    assert provider.called_at[1] - provider.called_at[0] >= 0.1 - 0.005  # the lane's pause was waited out
    assert outcomes(outgoing) == {("a", 1): ("delivered", 1), ("b", 1): ("delivered", 1), ("c", 1): ("delivered", 1)}
    assert provider.lane.stats.throttled == 1
    assert provider.lane.breaker.state == "closed"


async def test_a_pause_longer_than_the_lane_waits_sends_the_throttled_records_to_the_retry_chain() -> None:
    """A throttling pause beyond throttle_wait_max_s is not waited out: the throttled records wait in
    the first retry tier until the pause is over, without an attempt counted; the lane sends nothing
    more while paused."""
    provider = ScriptedProvider(lane(throttle_wait_max_s=0.5), throttling("b", retry_after=60))
    dispatch, _ = dispatcher(provider)
    began_ms = now_ms()

    outgoing = await dispatch.dispatch([pending("a"), pending("b")])

    assert provider.calls == [["a", "b"]]
    assert outcomes(outgoing) == {("a", 1): ("delivered", 1), ("b", 1): ("retrying", 0)}
    [retry] = on(CATALOG.retry("hubspot", "5s"), outgoing)
    state = from_headers(RetryState, retry.headers)
    assert (retry.key, state.attempts) == (b"b", 0)
    assert state.not_before_ms >= began_ms + 60_000  # the provider's wait, longer than the tier's 5 s

    later = await dispatch.dispatch([pending("c")])

    assert provider.calls == [["a", "b"]]  # the paused lane answered c throttled without a call
    assert outcomes(later) == {("c", 1): ("retrying", 0)}


async def test_an_open_breaker_sends_nothing_and_uses_no_attempt() -> None:
    """With the lane's circuit breaker open, the batch waits in the retry chain until the breaker lets
    a probe through; no attempt is used, so an outage never dead-letters a record."""
    provider = ScriptedProvider(ProviderLane("hubspot", HubSpotSettings(), breaker_threshold=1,
                                             breaker_cool_off_s=30), delivered)
    provider.lane.record_call(ok=False)
    dispatch, _ = dispatcher(provider)
    began_ms = now_ms()

    outgoing = await dispatch.dispatch([pending("a"), pending("b")])

    assert provider.calls == []
    assert outcomes(outgoing) == {("a", 1): ("retrying", 0), ("b", 1): ("retrying", 0)}
    retries = on(CATALOG.retry("hubspot", "5s"), outgoing)
    states = [from_headers(RetryState, m.headers) for m in retries]
    assert [m.key for m in retries] == [b"a", b"b"]
    assert all(s.attempts == 0 and s.not_before_ms >= began_ms + 29_000 for s in states)  # the cool-off
    assert on(CATALOG.dlq, outgoing) == []


def guard_holding(record_id: str, row: Delivered) -> MemoryTable:
    table = MemoryTable(CHANGELOG)
    table.data[record_id.encode()] = row.model_dump_json().encode()
    return table


@pytest.mark.parametrize("version", [4, 5])
async def test_a_version_not_newer_than_the_guard_is_superseded_without_a_call(version: int) -> None:
    """The provider holds version 5: versions 4 and 5 of the record are superseded, nothing is sent."""
    provider = ScriptedProvider(lane(), delivered)
    dispatch, write_ahead = dispatcher(provider, guard_holding("a", Delivered(version=5, key="a")))

    outgoing = await dispatch.dispatch([pending("a", version)])

    assert provider.calls == []
    assert outcomes(outgoing) == {("a", version): ("superseded", 0)}
    assert write_ahead.rows == [] and guard_rows(outgoing) == {}


async def test_the_guard_row_is_written_ahead_of_the_call_with_the_newest_version() -> None:
    """Before the provider is called, the guard row naming the newest version of the batch as sent is
    produced (so a crash before the answer cannot let an older version overwrite it); the older
    version of the batch is superseded, and the delivery is confirmed in the guard."""
    journal: list[str] = []
    guard = guard_holding("a", Delivered(version=2, key="a"))
    provider = ScriptedProvider(lane(), delivered, journal=journal)
    dispatch, write_ahead = dispatcher(provider, guard)

    outgoing = await dispatch.dispatch([pending("a", 3), pending("a", 7), pending("a", 1)])

    assert journal == ["write_ahead", "deliver"]
    [ahead] = write_ahead.rows
    assert (ahead.topic, ahead.key, ahead.partition) == (CHANGELOG, b"a", 3)
    assert Delivered.model_validate_json(ahead.value or b"") == Delivered(version=2, key="a", sent_version=7)
    assert outcomes(outgoing) == {
        ("a", 1): ("superseded", 0), ("a", 3): ("superseded", 0), ("a", 7): ("delivered", 1),
    }
    assert guard_rows(outgoing)["a"] == Delivered(version=7, key="a", sent_version=7)
    assert Delivered.model_validate_json(guard.get(b"a") or b"") == Delivered(version=7, key="a", sent_version=7)


async def test_a_short_request_on_a_saturated_lane_waits_for_the_next_batch_to_fill_it() -> None:
    """With the lane's rate used up, the records of a short request (here deletes) wait, their
    events held back from acknowledgement, and go with the next batch's as one request; after the
    linger, an empty batch sends what is left; an idle lane sends at once."""
    saturated = ProviderLane("hubspot", HubSpotSettings(rate_per_second=0.001, burst=1, batch_size=2))
    provider = ScriptedProvider(saturated, delivered, admitted=False)
    dispatch, _ = dispatcher(provider, linger_s=5.0)
    await saturated.admit_request()  # its one request for the next 1,000 s
    first = await dispatch.dispatch([pending("a", offset=0), pending("b", offset=1),
                                     pending("d1", offset=2, op="delete")])
    assert provider.calls == [["a", "b"]] and outcomes(first) == {("a", 1): ("delivered", 1), ("b", 1): ("delivered", 1)}
    assert [event.message.offset for event in dispatch.held()] == [2]
    due = dispatch.due_at()
    assert due is not None and due > time.monotonic()

    second = await dispatch.dispatch([pending("d2", offset=3, op="delete"), pending("c", offset=4)])
    assert provider.calls == [["a", "b"], ["d1", "d2"]]  # the carried delete filled a request
    assert outcomes(second) == {("d1", 1): ("delivered", 1), ("d2", 1): ("delivered", 1)}
    assert [event.message.offset for event in dispatch.held()] == [4]
    dispatch.linger_s = 0.0  # the linger has passed
    last = await dispatch.dispatch([])
    assert provider.calls[-1] == ["c"] and dispatch.held() == [] and dispatch.due_at() is None
    assert outcomes(last) == {("c", 1): ("delivered", 1)}

    idle = ScriptedProvider(lane(), delivered)
    at_once, _ = dispatcher(idle, linger_s=5.0)
    await at_once.dispatch([pending("d3", op="delete")])
    assert idle.calls == [["d3"]] and at_once.held() == []


async def test_records_carried_across_a_rebalance_are_dropped_unsent() -> None:
    """A record carried to the next batch, then a rebalance: its partition may be another worker's
    now, so it is not sent by this one (batches leaves its event unacknowledged; it is read again)."""
    saturated = ProviderLane("hubspot", HubSpotSettings(rate_per_second=0.001, burst=1, batch_size=2))
    provider = ScriptedProvider(saturated, delivered, admitted=False)
    dispatch, _ = dispatcher(provider, linger_s=5.0)
    await saturated.admit_request()
    await dispatch.dispatch([pending("a", offset=0), pending("b", offset=1), pending("d1", offset=2, op="delete")])
    assert [event.message.offset for event in dispatch.held()] == [2]

    read_after = pending("c", offset=3, op="delete")
    read_after.event.message.generation_id = APP.consumer_generation_id = 1  # a rebalance, then c is read
    dispatch.linger_s = 0.0
    try:
        after = await dispatch.dispatch([read_after])
    finally:
        APP.consumer_generation_id = 0
    assert provider.calls == [["a", "b"], ["c"]]  # d1 never sent
    assert outcomes(after) == {("c", 1): ("delivered", 1)} and dispatch.held() == []


async def test_a_record_created_and_deleted_in_one_batch_is_settled_without_a_request() -> None:
    """Its create, update and delete in one batch and no guard row: no call, the delete delivered
    with 0 attempts, the older versions superseded, and a row that supersedes a late older version.
    A delete of a record delivered before still goes to the provider."""
    provider = ScriptedProvider(lane(), delivered)
    guard = MemoryTable(CHANGELOG)
    guard.data[b"old"] = Delivered(version=1, key="old", provider_ids=("9",)).model_dump_json().encode()
    dispatch, _ = dispatcher(provider, guard)

    outgoing = await dispatch.dispatch([
        pending("new", 1, created=True), pending("new", 2), pending("new", 3, op="delete"),
        pending("old", 2, op="delete"),
    ])

    assert provider.calls == [["old"]]
    assert outcomes(outgoing) == {("new", 1): ("superseded", 0), ("new", 2): ("superseded", 0),
                                  ("new", 3): ("delivered", 0), ("old", 2): ("delivered", 1)}
    assert guard_rows(outgoing)["new"] == Delivered(version=3, key=None, provider_ids=())
    late = await dispatch.dispatch([pending("new", 2)])  # back from a retry tier, say
    assert outcomes(late) == {("new", 2): ("superseded", 0)} and provider.calls == [["old"]]


async def test_a_carried_record_waits_its_linger_from_the_end_of_the_dispatch_that_carried_it() -> None:
    """A dispatch on a saturated lane lasts longer than the linger (it waits for the lane); the
    records it carried still wait the whole linger for the next batch to fill their request."""
    saturated = ProviderLane("hubspot", HubSpotSettings(rate_per_second=0.001, burst=1, batch_size=2))
    provider = SlowProvider(saturated, delivered, admitted=False)
    dispatch, _ = dispatcher(provider, linger_s=0.2)
    await saturated.admit_request()
    await dispatch.dispatch([pending("a"), pending("b"), pending("c")])
    ended = time.monotonic()
    due = dispatch.due_at()
    assert provider.calls == [["a", "b"]] and due is not None and due >= ended + 0.2 - 0.01
    await dispatch.dispatch([])  # an empty batch at once: c has not waited its linger yet
    assert provider.calls == [["a", "b"]] and len(dispatch.held()) == 1


async def test_a_short_request_of_deletes_waits_longer_than_one_of_upserts() -> None:
    """On a saturated lane, a short request of upserts goes once ``linger_s`` passed (here at once),
    while the deletes of the batch wait their longer linger for more deletes, their events held
    back; the due time asked for is never further than the next look for a rebalance."""
    saturated = ProviderLane("hubspot", HubSpotSettings(rate_per_second=0.001, burst=1, batch_size=2))
    provider = ScriptedProvider(saturated, delivered, admitted=False)
    dispatch, _ = dispatcher(provider, linger_s=0.0)
    dispatch.delete_linger_s = 60.0
    await saturated.admit_request()
    first = await dispatch.dispatch([pending("a", offset=0), pending("b", offset=1), pending("c", offset=2),
                                     pending("d1", offset=3, op="delete")])
    assert provider.calls == [["a", "b"], ["c"]] and ("d1", 1) not in outcomes(first)
    assert [event.message.offset for event in dispatch.held()] == [3]
    due = dispatch.due_at()
    assert due is not None and due <= time.monotonic() + FLUSH_CHECK_S

    await dispatch.dispatch([])  # the poll: d1 has not waited its linger yet
    assert provider.calls == [["a", "b"], ["c"]]
    second = await dispatch.dispatch([pending("d2", offset=4, op="delete")])
    assert provider.calls[-1] == ["d1", "d2"] and dispatch.held() == []  # a full request of deletes
    assert outcomes(second) == {("d1", 1): ("delivered", 1), ("d2", 1): ("delivered", 1)}

    await dispatch.dispatch([pending("d3", offset=5, op="delete")])
    dispatch.delete_linger_s = 0.0  # the linger has passed
    await dispatch.dispatch([])
    assert provider.calls[-1] == ["d3"] and dispatch.held() == []


async def test_a_short_request_of_a_full_batch_waits_even_when_the_lane_has_room() -> None:
    """A batch cut at its size means more events are ready: its short request waits for them (a
    worker slower than its lane must not spend the room on short requests); a batch that was not
    full, on a lane with room, sends everything at once."""
    provider = ScriptedProvider(lane(batch_size=2), delivered)
    dispatch, _ = dispatcher(provider, linger_s=5.0)
    await dispatch.dispatch([pending("a", offset=0), pending("b", offset=1), pending("c", offset=2)],
                            more_waiting=True)
    assert provider.calls == [["a", "b"]] and [event.message.offset for event in dispatch.held()] == [2]
    await dispatch.dispatch([pending("d", offset=3)])
    assert provider.calls == [["a", "b"], ["c", "d"]] and dispatch.held() == []
    await dispatch.dispatch([pending("e", offset=4)])
    assert provider.calls[-1] == ["e"] and dispatch.held() == []


async def test_carried_records_go_at_once_when_a_rebalance_or_a_stop_begins() -> None:
    """Faust waits for every event in flight before it gives partitions up: once a rebalance or a
    stop is under way, carried deletes are sent with the next (empty) batch, their linger or not."""
    saturated = ProviderLane("hubspot", HubSpotSettings(rate_per_second=0.001, burst=1, batch_size=2))
    provider = ScriptedProvider(saturated, delivered, admitted=False)
    stopping = False
    dispatch, _ = dispatcher(provider, linger_s=60.0)
    dispatch.delete_linger_s, dispatch.flushing = 600.0, lambda: stopping
    await saturated.admit_request()
    await dispatch.dispatch([pending("a", offset=0), pending("b", offset=1), pending("d1", offset=2, op="delete")])
    assert [event.message.offset for event in dispatch.held()] == [2]

    stopping = True
    last = await dispatch.dispatch([])
    assert provider.calls == [["a", "b"], ["d1"]] and dispatch.held() == [] and dispatch.due_at() is None
    assert outcomes(last) == {("d1", 1): ("delivered", 1)}


class SlowProvider(ScriptedProvider):
    """A ScriptedProvider whose calls take 0.3 s, as if waiting for the lane."""

    async def deliver(self, batch: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        await asyncio.sleep(0.3)
        return await super().deliver(batch)
