"""The pure decisions of a provider dispatcher: what to send, and where a failed record goes next."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.errors import DeliveryError, PermanentError, RetryableError
from pipeline.kafka.topics import parse_duration
from pipeline.providers.base import RequestOf, by_operation
from schemas.dispatch import Delivered, DispatchRecord
from schemas.retry import RetryState

E = TypeVar("E")


@dataclass(frozen=True)
class Pending(Generic[E]):
    """One record read from a dispatch topic, with the event it came in and its retry history."""

    event: E
    record: DispatchRecord
    retry: RetryState


def select_newest(
    pending: Sequence[Pending[E]], delivered_version: Callable[[Pending[E]], int | None]
) -> tuple[list[Pending[E]], list[Pending[E]]]:
    """Split into (to send, superseded).

    To send: the newest version of each record in the batch, unless the provider already holds that
    version or a newer one. Everything else is superseded. Deletes are versions like any other.
    """
    newest: dict[str, Pending[E]] = {}
    superseded: list[Pending[E]] = []
    for item in pending:
        current = newest.get(item.record.record_id)
        if current is None or item.record.version > current.record.version:
            if current is not None:
                superseded.append(current)
            newest[item.record.record_id] = item
        else:
            superseded.append(item)
    to_send: list[Pending[E]] = []
    for item in newest.values():
        held = delivered_version(item)
        (superseded if held is not None and held >= item.record.version else to_send).append(item)
    return to_send, superseded


def born_here(pending: Sequence[Pending[E]], carried_born: Collection[str] = ()) -> set[str]:
    """The records whose earliest change in ``pending`` is their create at the source, or (a record
    carried from an earlier batch) was born in that batch: ``carried_born``.

    Not a create that ``replaces`` another record (a primary-key update): the platform may hold the
    old record under the same email.
    """
    earliest: dict[str, Pending[E]] = {}
    for item in pending:
        current = earliest.get(item.record.record_id)
        if current is None or item.record.version < current.record.version:
            earliest[item.record.record_id] = item
    return {
        record_id for record_id, item in earliest.items()
        if record_id in carried_born or (item.record.created and item.record.replaces is None)
    }


def never_sent(
    to_send: Sequence[Pending[E]], held: Callable[[Pending[E]], Delivered | None], born: Collection[str]
) -> tuple[list[Pending[E]], list[Pending[E]]]:
    """Split into (to send, deletes to settle without a request).

    A delete needs no request when the record was born in this batch (``born_here``) and its
    guard table has no row: the row is written ahead of every send, so no version of the record
    was ever sent, and before its create the record did not exist at the source. Nothing of it can
    be at the platform. A row of any kind (a send unanswered, a version delivered, a stray key) or a
    create that came before this batch keeps the delete a request.
    """
    send: list[Pending[E]] = []
    settle: list[Pending[E]] = []
    for item in to_send:
        unsent = item.record.op == "delete" and item.record.record_id in born and held(item) is None
        (settle if unsent else send).append(item)
    return send, settle


def guard_version(held: Delivered | None) -> int | None:
    """The version a send must be newer than: the one the provider holds, and every version below
    the newest one sent (it may have landed although its answer never came)."""
    if held is None:
        return None
    below_sent = None if held.sent_version is None else held.sent_version - 1
    return max((v for v in (held.version, below_sent) if v is not None), default=None)


def sending(held: Delivered | None, record: DispatchRecord) -> Delivered:
    """The guard row written ahead of sending ``record``: its version as the newest sent, and for an
    upsert under a new key that key as a stray, in case the worker dies before the answer (the
    provider may hold the record there then; ``confirmed`` drops it once the send is answered)."""
    row = held if held is not None else Delivered(version=None, key=None)
    strays = row.stray_keys
    if record.op == "upsert" and record.key not in (row.key, *strays):
        strays = (*strays, record.key)
    sent = max(record.version, row.sent_version or record.version)
    return row.model_copy(update={"sent_version": sent, "stray_keys": strays})


def with_held_keys(record: DispatchRecord, held: Delivered | None) -> DispatchRecord:
    """``record`` naming the key the provider holds it under (when this version moves it
    elsewhere), the keys it may hold it under too, so the adapter can clean them up, and the
    provider's ids for it when they are known."""
    update: dict[str, object] = {}
    if held is not None and held.key is not None and held.key != record.key:
        update["previous_key"] = held.key
    if held is not None and held.stray_keys:
        update["stray_keys"] = held.stray_keys
    if (ids := held_provider_ids(held, record)) is not None:
        update["provider_ids"] = ids
    return record.model_copy(update=update) if update else record


def held_provider_ids(held: Delivered | None, record: DispatchRecord) -> tuple[str, ...] | None:
    """The provider's ids for the record as far as the pipeline's confirmed sends tell; None when
    they cannot tell.

    Not while a send is outstanding (it may have created an object whose id never came back), nor
    for a delete of a record the pipeline never delivered (it may have been created elsewhere, so
    the adapter looks it up). An upsert of such a record starts from none: its answer gives the id.
    """
    if held is None:
        return () if record.op == "upsert" else None
    outstanding = held.sent_version is not None and (held.version is None or held.sent_version > held.version)
    return None if outstanding else held.provider_ids


def confirmed(held: Delivered | None, record: DispatchRecord, provider_ids: tuple[str, ...] | None) -> Delivered:
    """The guard row once ``record`` (sent with ``with_held_keys``) is delivered: its version, key
    and the provider's ids for it as the answer gave them.

    The adapter cleaned the stray keys the record carried; an upsert's own key is the held key now,
    and after a delete the provider holds the record under none (so an upsert under another key
    later has nothing to move: Mailchimp subscribes it rather than moving an archived member, which
    costs a 404 and a subscribe after it, or a member another record holds now). Strays learnt
    since the record was sent stay.
    """
    cleaned = {record.key, *record.stray_keys}
    strays = tuple(key for key in held.stray_keys if key not in cleaned) if held is not None else ()
    sent = held.sent_version if held is not None else None
    key = record.key if record.op == "upsert" else None
    return Delivered(version=record.version, key=key, stray_keys=strays, sent_version=sent, provider_ids=provider_ids)


def unconfirmed(held: Delivered | None, record: DispatchRecord, error: DeliveryError) -> Delivered | None:
    """The guard row after a send of ``record`` failed with ``error``; None when it stays as it is.

    An upsert that failed with a retryable error (timeout, 5xx) may have been applied all the same,
    so the provider may now hold the record under its key: that key becomes a stray key unless it
    is the held key already. A refusal (permanent error) created nothing, and neither does a delete.
    """
    if record.op != "upsert" or not isinstance(error, RetryableError):
        return None
    if held is None:
        return Delivered(version=None, key=None, stray_keys=(record.key,))
    if record.key == held.key or record.key in held.stray_keys:
        return None
    return held.model_copy(update={"stray_keys": (*held.stray_keys, record.key)})


def _by_call(items: Sequence[Pending[E]], request_of: RequestOf) -> list[list[Pending[E]]]:
    groups: dict[str, list[Pending[E]]] = {}
    for item in items:
        groups.setdefault(request_of(item.record), []).append(item)
    return list(groups.values())


def chunks(items: Sequence[Pending[E]], size: int, request_of: RequestOf = by_operation) -> list[list[Pending[E]]]:
    """Requests of at most ``size`` records, one call's records apart from another's
    (``request_of``: upserts and deletes at least; Salesforce's upserts by SObject too).

    A delete costs calls of its own (HubSpot's batch archive, Salesforce's collection delete), so
    deletes spread over every upsert batch would make those calls once per batch for a record or two;
    and an adapter splits a request that mixes calls into one short request per call.
    (On a saturated lane ``short_requests`` carries the last, short request of each to the next batch.)
    """
    return [group[i : i + size] for group in _by_call(items, request_of) for i in range(0, len(group), size)]


def short_requests(
    to_send: Sequence[Pending[E]], request_size: int, *, may_wait: bool, request_of: RequestOf = by_operation
) -> tuple[list[Pending[E]], list[Pending[E]]]:
    """Split into (send now, carry to the next batch): while ``may_wait``, the records of each
    call beyond its last full request (``chunks``) wait for the next batch to fill theirs.

    A record is never carried past another record sent now under the same provider key, so records
    that share a key (one Mailchimp member) still reach the provider in order.
    """
    if not may_wait:
        return list(to_send), []
    groups = _by_call(to_send, request_of)
    candidates = [item for group in groups for item in group[len(group) - len(group) % request_size :]]
    keys = Counter(item.record.key for item in to_send)
    if any(keys[item.record.key] > 1 for item in candidates):  # a shared key: order before fuller requests
        return list(to_send), []
    carried = {id(item) for item in candidates}
    return [item for item in to_send if id(item) not in carried], candidates


def waves(items: Sequence[Pending[E]]) -> list[list[Pending[E]]]:
    """Split so that no provider key appears twice in a wave; waves are sent one after the other.

    Two records can share a provider key (two contacts with one email are one Mailchimp member):
    in one request the platform refuses both, and in two concurrent requests the later could land
    first. Sending them in separate waves keeps each request valid and their order fixed.
    """
    result: list[list[Pending[E]]] = []
    seen: dict[str, int] = {}
    for item in items:
        wave = seen.get(item.record.key, -1) + 1
        seen[item.record.key] = wave
        if wave == len(result):
            result.append([])
        result[wave].append(item)
    return result


def failed_as_a_whole(errors: Sequence[DeliveryError | None]) -> bool:
    """True when one permanent error answered for every record that failed (more than one): a call,
    not a record, was refused. Records the adapter settled in another call may have succeeded."""
    failed = [error for error in errors if error is not None]
    first = failed[0] if failed else None
    return (
        len(failed) > 1
        and isinstance(first, PermanentError)
        and all(error is first for error in failed)
    )


@dataclass(frozen=True)
class RetryPlan:
    """Where a failed record goes: a retry tier (``tier`` set) or the dead-letter topic."""

    tier: str | None
    state: RetryState


def plan_retry(
    state: RetryState, error: DeliveryError, tiers: Sequence[str], now_ms: int, *, counts: bool = True
) -> RetryPlan:
    """The next step for a record whose delivery failed with ``error``.

    A permanent error, or a retryable one after the last tier, goes to the dead-letter topic.
    ``counts=False`` (the circuit breaker was open, nothing was sent) waits in a tier without using
    up an attempt, so an open breaker never dead-letters a record.
    """
    attempts = state.attempts + 1 if counts else state.attempts
    new_state = RetryState(
        attempts=attempts,
        not_before_ms=0,
        first_failure_ms=state.first_failure_ms or now_ms,
        last_failure_ms=now_ms,
        last_error=f"{type(error).__name__}: {error}",
    )
    if isinstance(error, PermanentError) or attempts > len(tiers):
        return RetryPlan(None, new_state)
    tier = tiers[max(attempts, 1) - 1]
    wait_s = parse_duration(tier)
    if isinstance(error, RetryableError):
        wait_s = max(wait_s, error.retry_after)
    return RetryPlan(tier, new_state.model_copy(update={"not_before_ms": now_ms + int(wait_s * 1000)}))
