"""Delivering one batch of dispatch events to one provider, and settling every record of it.

Each record of the batch ends in exactly one place before the batch is acknowledged: delivered,
superseded (the provider already holds a newer version), waiting in a retry tier, or dead-lettered.
Throttling is not a failure of the record: the lane pauses for the time the provider asks, and the
same records are sent again after the pause, without using up an attempt.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import faust
import structlog
from faust.types import EventT

from pipeline.delivery.outcomes import OutcomeRecorder, record_outcome
from pipeline.delivery.rate_limit import ProviderLane
from pipeline.errors import DeliveryError, RetryableError, ThrottledError
from pipeline.kafka.dead_letters import dead_letter, now_ms
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.table_rows import get_row, set_row
from pipeline.kafka.topics import TopicCatalog
from pipeline.providers import DeliveryResult, Provider
from pipeline.providers.base import RequestOf, by_operation
from pipeline.stages.dispatch import (
    Pending,
    born_here,
    chunks,
    confirmed,
    failed_as_a_whole,
    guard_version,
    never_sent,
    plan_retry,
    select_newest,
    sending,
    short_requests,
    unconfirmed,
    waves,
    with_held_keys,
)
from schemas.dispatch import Delivered, DeliveryState
from schemas.headers import to_headers

log = structlog.get_logger(__name__)

Item = Pending[EventT[bytes]]
# While it carries records, how often the dispatcher asks for a batch (an empty one if nothing came)
# to see whether a rebalance or a stop began: then it sends them at once (Faust waits for every event
# in flight before it gives partitions up), so a delete's longer linger holds a rebalance no longer
# than this.
FLUSH_CHECK_S = 1.0


def _never() -> bool:
    return False


@dataclass
class Dispatcher:
    provider: Provider
    lane: ProviderLane
    catalog: TopicCatalog
    delivered_version: faust.Table[bytes, bytes]  # record id (bytes) -> Delivered JSON: the version guard
    write_ahead: Callable[[list[Outgoing]], Awaitable[object]]  # produces rows before their requests
    outcomes: OutcomeRecorder  # the outcome messages, and this provider's dispatch status rows
    linger_s: float = 0.0  # how long a record may wait for more to fill its request on a saturated lane
    delete_linger_s: float = 0.0  # the same for a delete, when longer (a few in a hundred changes)
    request_of: RequestOf = by_operation  # which of the provider's calls carries a record
    flushing: Callable[[], bool] = _never  # True while a rebalance or a stop is under way: nothing waits
    _carried: list[Item] = field(default_factory=list)  # records carried to the next batch, unacknowledged
    _carried_since: dict[int, float] = field(default_factory=dict)  # id(item) -> when it was first carried
    _carried_born: set[str] = field(default_factory=set)  # carried records born in the batch they came in
    # the guard rows this dispatch wrote ahead of its requests, by record id: what the table holds for
    # each record sent until it is settled (so settling it reads no row back)
    _written_ahead: dict[str, Delivered] = field(default_factory=dict)

    def held(self) -> list[EventT[bytes]]:
        """The events of the records carried to the next batch: not to be acknowledged yet."""
        return [item.event for item in self._carried]

    def due_at(self) -> float | None:
        """When the carried records go even if no other event comes (monotonic), or the next look
        at ``flushing``, whichever is first; None: none carried."""
        if not self._carried:
            return None
        due = min(self._carried_since[id(item)] + self._linger(item) for item in self._carried)
        return min(due, time.monotonic() + FLUSH_CHECK_S)

    def _linger(self, item: Item) -> float:
        """How long ``item`` may wait to fill its request: a delete the longer of the two lingers."""
        return max(self.linger_s, self.delete_linger_s) if item.record.op == "delete" else self.linger_s

    async def dispatch(self, pending: Sequence[Item], *, more_waiting: bool = False) -> list[Outgoing]:
        """Send what is newest, settle everything but the records carried to the next batch, and
        return the messages that record it. ``more_waiting``: the batch was cut at its size, more
        events are ready, so a short request may wait for them even if the lane has room this moment."""
        pending = [*self._still_ours(self._carried), *pending]  # the carried first: they were read first
        held = {item.record.record_id: self._held(item) for item in pending}  # one guard read per record
        to_send, superseded = select_newest(pending, lambda item: guard_version(held[item.record.record_id]))
        born = born_here(pending, self._carried_born)
        to_send, unsent = never_sent(to_send, lambda item: held[item.record.record_id], born)
        to_send = self._carry(to_send, may_wait=(self.lane.saturated or more_waiting) and not self.flushing())
        self._carried_born = {item.record.record_id for item in self._carried} & born
        to_send = [replace(item, record=with_held_keys(item.record, held[item.record.record_id])) for item in to_send]
        ahead = self._written_ahead = {
            item.record.record_id: sending(held[item.record.record_id], item.record) for item in to_send
        }
        await self.write_ahead([self._hold(item, ahead[item.record.record_id]) for item in to_send])
        outgoing = [self._superseded(item) for item in superseded]
        outgoing += [message for item in unsent for message in self._nothing_to_delete(item)]
        for wave in waves(to_send):
            batches = chunks(wave, self.lane.settings.batch_size, self.request_of)
            for settled in await asyncio.gather(*(self._deliver(batch) for batch in batches)):
                outgoing += settled
        free = time.monotonic()  # records carried by this dispatch wait from now: see _carry
        self._carried_since = {key: min(since, free) for key, since in self._carried_since.items()}
        return self.outcomes.with_rows(outgoing)

    @staticmethod
    def _still_ours(carried: list[Item]) -> list[Item]:
        """The carried records read since the last rebalance; the others are dropped unsent (and
        never acknowledged, ``pipeline.kafka.batches``): their partition may be another worker's
        now, which reads them again from its commit."""
        return [item for item in carried if item.event.message.generation_id == item.event.app.consumer_generation_id]

    def _carry(self, to_send: list[Item], *, may_wait: bool) -> list[Item]:
        """Carry the records that would make a short request to the next batch while they ``may_wait``
        (the lane is saturated, so a request would wait for it anyway, or more events are ready,
        and no rebalance or stop is under way), each for at most its linger (``_linger``) from the
        end of the dispatch that first carried it (that dispatch waits for the lane, often longer
        than ``linger_s``, and no batch can fill the request meanwhile): a call whose short request
        holds a record that waited that long goes now. What to send now."""
        now = time.monotonic()
        _, carried = short_requests(
            to_send, self.lane.settings.batch_size, may_wait=may_wait, request_of=self.request_of,
        )
        carried = [item for item in carried if self._linger(item) > 0]
        since = {id(item): self._carried_since.get(id(item), math.inf) for item in carried}  # inf: this dispatch's
        due = {self.request_of(item.record) for item in carried if now - since[id(item)] >= self._linger(item)}
        self._carried = [item for item in carried if self.request_of(item.record) not in due]
        self._carried_since = {id(item): since[id(item)] for item in self._carried}
        return [item for item in to_send if id(item) not in self._carried_since]

    async def _deliver(self, batch: list[Item]) -> list[Outgoing]:
        unavailable = self._unavailable()
        if unavailable is not None:
            return [m for item in batch for m in self._failed(item, unavailable, counts=False)]
        results = await self._send_until_not_throttled(batch)
        errors = [result.error for result in results]
        self.lane.record_call(ok=not all(isinstance(e, RetryableError) for e in errors))
        if failed_as_a_whole(errors):
            halves = [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
            return [message for half in halves for message in await self._deliver(half)]
        outgoing: list[Outgoing] = []
        for item, result in zip(batch, results, strict=True):
            if result.ok:
                outgoing += self._delivered(item, result)
            else:
                outgoing += self._failed(item, result.error, counts=not isinstance(result.error, ThrottledError))
        return outgoing

    def _unavailable(self) -> RetryableError | None:
        """Why nothing may be sent now: an open breaker, or a throttling pause too long to wait out
        while holding the batch (a worker holding events stalls its group's rebalances)."""
        if not self.lane.breaker.allow():
            breaker = self.lane.breaker
            return RetryableError(f"circuit breaker open for {self.provider.name}", retry_after=breaker.probe_in)
        if self.lane.paused_for > self.lane.settings.throttle_wait_max_s:
            return ThrottledError(f"{self.provider.name} throttled us", retry_after=self.lane.paused_for)
        return None

    async def _send_until_not_throttled(self, batch: list[Item]) -> list[DeliveryResult]:
        """Send; records the provider throttled are sent again once the lane's pause is over, unless
        that pause is longer than the lane waits out: then they are answered throttled."""
        results: list[DeliveryResult | None] = [None] * len(batch)
        waiting = list(range(len(batch)))
        while waiting:
            records = [batch[i].record for i in waiting]
            answers = await self.provider.deliver(records)
            throttled = [a.error for a in answers if isinstance(a.error, ThrottledError)]
            if throttled:
                pause = max(error.retry_after for error in throttled if error is not None)
                self.lane.pause(pause)
                log.warning("throttled", provider=self.provider.name, pause_s=pause, records=len(throttled))
            wait_out = self.lane.paused_for <= self.lane.settings.throttle_wait_max_s
            still_waiting = []
            for index, answer in zip(waiting, answers, strict=True):
                if isinstance(answer.error, ThrottledError) and wait_out:
                    still_waiting.append(index)
                else:
                    results[index] = answer
            waiting = still_waiting
        return [result for result in results if result is not None]

    def _held(self, item: Item) -> Delivered | None:
        held = get_row(self.delivered_version, item.event, item.record.record_id.encode())
        return Delivered.model_validate_json(held) if held is not None else None

    def _hold(self, item: Item, row: Delivered) -> Outgoing:
        """Write the version guard row; returns its changelog message, to produce with the batch."""
        key, value = item.record.record_id.encode(), row.model_dump_json().encode()
        return set_row(self.delivered_version, item.event, key, value)

    def _delivered(self, item: Item, result: DeliveryResult) -> list[Outgoing]:
        record = item.record
        row = confirmed(self._written_ahead[record.record_id], record, result.provider_ids)
        return [self._hold(item, row), self.outcomes.record(item.event, record_outcome(
            record, "delivered", attempts=item.retry.attempts + 1, provider_id=result.provider_id,
        ))]

    def _nothing_to_delete(self, item: Item) -> list[Outgoing]:
        """Settle a delete of a record never sent (``never_sent``) without a request. Its state is
        ``delivered``: the platform holds what this version says, nothing of the record, as after a
        confirmed delete, and its row says so too (no ids), so an older version still on its way (a
        retry) is superseded. ``attempts`` stays the record's: no request carried it."""
        row = confirmed(None, item.record, ())
        return [self._hold(item, row), self.outcomes.record(item.event, record_outcome(
            item.record, "delivered", attempts=item.retry.attempts,
        ))]

    def _superseded(self, item: Item) -> Outgoing:
        return self.outcomes.record(item.event, record_outcome(item.record, "superseded", attempts=item.retry.attempts))

    def _failed(self, item: Item, error: DeliveryError | None, *, counts: bool = True) -> list[Outgoing]:
        assert error is not None
        record, message = item.record, item.event.message
        row = unconfirmed(self._written_ahead[record.record_id], record, error) if counts else None  # counts: sent
        held = [] if row is None else [self._hold(item, row)]
        plan = plan_retry(item.retry, error, self.catalog.retry_tiers, now_ms(), counts=counts)
        log.info("delivery failed", provider=record.provider, record_id=record.record_id,
                 error_class=type(error).__name__, status=error.status, next_tier=plan.tier)
        if plan.tier is None:
            letter = dead_letter(
                self.catalog.dlq, item.event, "dispatch", error, provider=record.provider,
                attempts=plan.state.attempts, first_failure_ms=plan.state.first_failure_ms,
            )
            state: DeliveryState = "dead_lettered"
            messages = [letter]
        else:
            topic = self.catalog.retry(record.provider, plan.tier)
            messages = [Outgoing(topic, message.key, message.value, to_headers(plan.state))]
            state = "retrying"
        messages.append(self.outcomes.record(item.event, record_outcome(
            record, state, attempts=plan.state.attempts, error=plan.state.last_error,
        )))
        return held + messages
