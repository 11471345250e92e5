"""The dispatcher's pure decisions: newest-only selection, whole-batch failures, retry plans."""

from __future__ import annotations

from pipeline.delivery.outcomes import record_outcome
from pipeline.errors import PermanentError, RetryableError, ThrottledError
from pipeline.stages.dispatch import (
    Pending,
    born_here,
    chunks,
    confirmed,
    failed_as_a_whole,
    guard_version,
    held_provider_ids,
    never_sent,
    plan_retry,
    select_newest,
    sending,
    short_requests,
    unconfirmed,
    waves,
    with_held_keys,
)
from schemas.contact import DroppedField
from schemas.dispatch import Delivered, DispatchRecord, Outcome
from schemas.retry import RetryState

TIERS = ("5s", "1m", "10m")


def pending(
    record_id: str, version: int, op: str = "upsert", key: str = "", *, created: bool = False,
    replaces: str | None = None,
) -> Pending[None]:
    record = DispatchRecord(record_id=record_id, provider="hubspot", op=op, version=version,
                            source_ts_ms=0, captured_at_ms=0, key=key or record_id, payload={},
                            created=created, replaces=replaces)
    return Pending(event=None, record=record, retry=RetryState())


def test_select_newest_keeps_one_newest_version_per_record() -> None:
    """One record twice in a batch: only the newest is sent, the other is superseded."""
    items = [pending("a", 1), pending("b", 5), pending("a", 3), pending("a", 2)]
    to_send, superseded = select_newest(items, lambda item: None)
    assert sorted((i.record.record_id, i.record.version) for i in to_send) == [("a", 3), ("b", 5)]
    assert sorted(i.record.version for i in superseded) == [1, 2]


def test_select_newest_skips_versions_the_provider_already_holds() -> None:
    """The version guard: an older or equal version than the delivered one is superseded."""
    held = {"a": 3, "b": 4}
    items = [pending("a", 3), pending("b", 5, op="delete"), pending("c", 1)]
    to_send, superseded = select_newest(items, lambda item: held.get(item.record.record_id))
    assert sorted(i.record.record_id for i in to_send) == ["b", "c"]
    assert [i.record.record_id for i in superseded] == ["a"]


def test_a_version_sent_before_a_crash_supersedes_older_ones_but_not_itself() -> None:
    """The row written ahead of a send: if the worker dies before the answer, the provider may hold
    that version, so a replay of an older one is superseded, while the same version is sent again."""
    held = Delivered(version=3, key="a")
    row = sending(held, pending("a", 9).record)
    assert (row.version, row.sent_version) == (3, 9)
    guard = {"a": guard_version(row)}
    to_send, superseded = select_newest([pending("a", 7)], lambda item: guard[item.record.record_id])
    assert (to_send, [i.record.version for i in superseded]) == ([], [7])
    to_send, _ = select_newest([pending("a", 9)], lambda item: guard[item.record.record_id])
    assert [i.record.version for i in to_send] == [9]
    assert sending(row, pending("a", 5).record).sent_version == 9  # never goes back
    assert confirmed(row, pending("a", 9).record, None).sent_version == 9
    assert guard_version(None) is None and guard_version(Delivered(version=None, key=None)) is None


def test_a_new_key_sent_before_a_crash_is_remembered_until_the_answer() -> None:
    """Mailchimp: an email change sent just before the worker died may have created that member;
    the row written ahead keeps its key as a stray, and the delivery's confirmation drops it."""
    held = Delivered(version=3, key="old")
    moving = pending("a", 9, key="new").record
    row = sending(held, moving)
    assert row.stray_keys == ("new",)
    assert sending(row, moving).stray_keys == ("new",)  # not twice
    assert confirmed(row, moving, None) == Delivered(version=9, key="new", sent_version=9)
    assert sending(held, pending("a", 9, op="delete", key="old").record).stray_keys == ()


def test_failed_as_a_whole_needs_one_shared_permanent_error() -> None:
    """Only the same permanent error for every record means the call itself was refused."""
    shared = PermanentError("bad request", status=400)
    assert failed_as_a_whole([shared, shared, shared])
    assert not failed_as_a_whole([shared])
    assert not failed_as_a_whole([PermanentError("x"), PermanentError("x")])
    retry = RetryableError("503")
    assert not failed_as_a_whole([retry, retry])


def test_failed_as_a_whole_looks_at_the_records_that_failed() -> None:
    """One refused call among others (a batch subscribe after moves that went through, upserts
    beside deletes) is still split to find the record it refused."""
    shared = PermanentError("bad request", status=400)
    assert failed_as_a_whole([None, shared, shared])
    assert not failed_as_a_whole([None, shared])


def test_retryable_errors_climb_the_tiers_then_dead_letter() -> None:
    """Each retryable failure goes one tier up, due after that tier's delay; after the last, DLQ."""
    state = RetryState()
    tiers_seen = []
    for now in (1_000, 10_000, 100_000):
        plan = plan_retry(state, RetryableError("timeout"), TIERS, now)
        tiers_seen.append((plan.tier, plan.state.not_before_ms - now))
        state = plan.state
    assert tiers_seen == [("5s", 5_000), ("1m", 60_000), ("10m", 600_000)]
    last = plan_retry(state, RetryableError("timeout"), TIERS, 999_000)
    assert last.tier is None and last.state.attempts == 4 and last.state.first_failure_ms == 1_000


def test_retry_after_longer_than_the_tier_delay_wins() -> None:
    """A provider's Retry-After is honoured when it is longer than the tier's delay."""
    plan = plan_retry(RetryState(), ThrottledError("slow down", retry_after=30), TIERS, 0)
    assert (plan.tier, plan.state.not_before_ms) == ("5s", 30_000)


def test_permanent_error_goes_straight_to_the_dead_letter_topic() -> None:
    """Validation errors are not retried."""
    plan = plan_retry(RetryState(), PermanentError("invalid email", status=400), TIERS, 0)
    assert plan.tier is None and plan.state.attempts == 1


def test_open_breaker_waits_without_using_an_attempt() -> None:
    """Records deferred by an open breaker never run out of attempts."""
    state = RetryState(attempts=3)
    plan = plan_retry(state, RetryableError("breaker open"), TIERS, 0, counts=False)
    assert plan.tier == "10m" and plan.state.attempts == 3


def test_records_sharing_a_provider_key_go_in_separate_waves() -> None:
    """Two contacts with one email (one Mailchimp member) are never in one request or in flight together."""
    items = [pending("a", 1, key="m1"), pending("b", 1, key="m2"), pending("c", 1, key="m1"), pending("d", 1, key="m1")]
    assert [[i.record.record_id for i in wave] for wave in waves(items)] == [["a", "b"], ["c"], ["d"]]


def _sent(held: Delivered | None, key: str, version: int = 9, op: str = "upsert") -> DispatchRecord:
    """The record the dispatcher sends: mapped under ``key``, with what the guard row says."""
    return with_held_keys(pending("r1", version, op=op, key=key).record, held)


def test_rows_written_before_stray_keys_existed_still_read() -> None:
    """A version guard row from the changelog of an older release reads with no stray keys."""
    row = Delivered.model_validate_json(b'{"version": 5, "key": "old-hash"}')
    assert (row.version, row.key, row.stray_keys) == (5, "old-hash", ())


def test_an_upsert_with_an_unknown_outcome_under_a_new_key_leaves_a_stray_key() -> None:
    """A timeout or 5xx under a key other than the held one: the provider may hold the record there
    now, so the row remembers that key, once, and the next send carries it to the adapter."""
    held = Delivered(version=1, key="outlook")
    row = unconfirmed(held, _sent(held, "gmail"), RetryableError("timed out", code="timeout"))
    assert row == Delivered(version=1, key="outlook", stray_keys=("gmail",))
    assert unconfirmed(row, _sent(row, "gmail"), RetryableError("503", status=503)) is None
    again = _sent(row, "hooli")
    assert (again.previous_key, again.stray_keys) == ("outlook", ("gmail",))


def test_a_first_send_with_an_unknown_outcome_leaves_a_row_with_no_version() -> None:
    """With nothing delivered yet, the row only remembers the stray key; the guard holds no version."""
    row = unconfirmed(None, _sent(None, "gmail"), RetryableError("timed out"))
    assert row == Delivered(version=None, key=None, stray_keys=("gmail",))
    assert _sent(row, "hooli").previous_key is None


def test_refusals_deletes_and_the_held_key_leave_no_stray() -> None:
    """A permanent error created nothing, a delete creates nothing, and the held key is no stray."""
    held = Delivered(version=1, key="outlook")
    assert unconfirmed(held, _sent(held, "gmail"), PermanentError("invalid", status=400)) is None
    assert unconfirmed(held, _sent(held, "gmail", op="delete"), RetryableError("timed out")) is None
    assert unconfirmed(held, _sent(held, "outlook"), RetryableError("timed out")) is None


def test_a_confirmed_delivery_forgets_the_strays_it_cleaned() -> None:
    """Delivered: the row holds the new version and key; the strays the send carried, and its own
    key, are gone; a stray learnt after the send stays."""
    held = Delivered(version=1, key="outlook", stray_keys=("gmail", "hooli"))
    record = _sent(held, "hooli", version=4)
    later = held.model_copy(update={"stray_keys": (*held.stray_keys, "yahoo")})
    assert confirmed(later, record, None) == Delivered(version=4, key="hooli", stray_keys=("yahoo",))
    assert confirmed(None, _sent(None, "gmail"), None) == Delivered(version=9, key="gmail")


def test_after_a_confirmed_delete_a_new_key_has_nothing_to_move() -> None:
    """Mailchimp: a record deleted at one address and created again at another is subscribed there,
    not moved from the archived member (a 404, then a subscribe of its own)."""
    held = Delivered(version=3, key="gmail")
    row = confirmed(held, _sent(held, "gmail", version=4, op="delete"), ())
    assert (row.version, row.key) == (4, None)
    assert _sent(row, "outlook", version=5).previous_key is None
    assert _sent(held, "outlook", version=5).previous_key == "gmail"  # a move while it is held


def test_deletes_and_upserts_go_in_separate_requests() -> None:
    """Deletes are gathered into requests of their own, so their extra calls are made once per wave."""
    items = [pending("a", 1), pending("b", 1, op="delete"), pending("c", 1), pending("d", 1, op="delete"), pending("e", 1)]
    assert [[i.record.record_id for i in chunk] for chunk in chunks(items, 2)] == [["a", "c"], ["e"], ["b", "d"]]


def test_requests_are_filled_call_by_call() -> None:
    """Records that go in different calls of the provider (Salesforce's SObjects) are chunked and
    carried apart, so a short request of one call does not go out because another call's was full."""
    items = [pending(name, 1) for name in ("l1", "c1", "l2", "c2", "c3")]
    call = lambda record: record.record_id[0]  # noqa: E731
    assert [[i.record.record_id for i in chunk] for chunk in chunks(items, 2, call)] == [["l1", "l2"], ["c1", "c2"], ["c3"]]
    send, carried = short_requests(items, 2, may_wait=True, request_of=call)
    assert [i.record.record_id for i in carried] == ["c3"]
    assert [i.record.record_id for i in send] == ["l1", "c1", "l2", "c2"]


def test_every_outcome_of_a_record_names_the_fields_dropped_from_its_contact() -> None:
    """A dispatch record carries what the transform stage dropped into its outcome; an old dispatch
    message without the field decodes with none."""
    phone = DroppedField(field="phone", reason="too short (default region US)")
    record = pending("a", 4).record.model_copy(update={"dropped_fields": (phone,)})
    outcome = record_outcome(DispatchRecord.model_validate_json(record.model_dump_json()), "delivered", attempts=1)
    assert Outcome.model_validate_json(outcome.model_dump_json()).dropped_fields == (phone,)
    old = pending("a", 4).record.model_dump_json(exclude={"dropped_fields"})
    assert DispatchRecord.model_validate_json(old).dropped_fields == ()


def test_a_delete_carries_the_ids_a_confirmed_upsert_kept() -> None:
    """The provider's ids from a confirmed upsert ride with the next delete, so the adapter deletes
    without looking them up; a confirmed delete leaves none."""
    first = pending("a", 1).record
    assert with_held_keys(first, None).provider_ids == ()  # a first upsert: its answer gives the id
    row = confirmed(sending(None, first), first, ("101",))
    assert row == Delivered(version=1, key="a", sent_version=1, provider_ids=("101",))
    delete = pending("a", 2, op="delete").record
    assert with_held_keys(delete, sending(row, delete)).provider_ids is None  # the send is outstanding
    assert with_held_keys(delete, row).provider_ids == ("101",)
    assert confirmed(sending(row, delete), delete, ()).provider_ids == ()


def test_provider_ids_are_unknown_when_the_row_cannot_tell() -> None:
    """No ids are trusted for a row from before they were kept, while a send is unanswered (it may
    have created an object whose id never came back), or for a delete of a record never delivered
    (it may have been created elsewhere): the adapter looks those up."""
    delete = pending("a", 5, op="delete").record
    old = Delivered.model_validate_json(b'{"version": 3, "key": "a", "sent_version": 3}')
    assert old.provider_ids is None and held_provider_ids(old, delete) is None
    failed = Delivered(version=3, key="a", sent_version=4, provider_ids=("101",))
    assert held_provider_ids(failed, delete) is None
    assert held_provider_ids(None, delete) is None
    assert held_provider_ids(Delivered(version=None, key=None, stray_keys=("a",)), delete) is None


def test_records_short_of_a_full_request_are_carried_while_the_lane_may_wait() -> None:
    """Full requests go now, upserts and deletes apart; the records of each beyond its last full
    request wait for more, unless the lane may not wait, or one of them shares its key with a
    record sent now (order first)."""
    items = [pending("u1", 1), *(pending(f"d{n}", 1, op="delete") for n in range(5)), pending("u2", 1),
             pending("u3", 1)]
    send, carried = short_requests(items, 2, may_wait=True)
    assert [i.record.record_id for i in carried] == ["u3", "d4"]
    assert [i.record.record_id for i in send] == ["u1", "d0", "d1", "d2", "d3", "u2"]
    assert short_requests(items, 2, may_wait=False) == (items, [])
    shared = [pending("a", 1, key="k"), pending("b", 1, op="delete", key="k")]
    assert short_requests(shared, 100, may_wait=True) == (shared, [])


def test_records_born_in_the_batch_are_those_whose_earliest_change_is_their_create() -> None:
    """A record is born here when its earliest change in the batch is its create at the source, or
    it was carried from the batch it was born in; not after an update, and not a create that
    replaces another record (a primary-key update)."""
    items = [
        pending("a", 2, op="delete"), pending("a", 1, created=True),  # out of order: the earliest counts
        pending("b", 1), pending("b", 2, created=True),  # an update came before the create
        pending("c", 1, created=True, replaces="old"),
        pending("d", 3, op="delete"),
    ]
    assert born_here(items) == {"a"}
    assert born_here(items, carried_born={"d"}) == {"a", "d"}


def test_a_delete_of_a_record_never_sent_needs_no_request() -> None:
    """Only a delete of a record born here whose guard table has no row is settled without a
    request: any row (an unanswered send, a delivered version, a stray key) keeps it a request."""
    rows = {
        "sent": Delivered(version=None, key=None, sent_version=1),
        "delivered": Delivered(version=1, key="delivered", provider_ids=("9",)),
        "stray": Delivered(version=None, key=None, stray_keys=("stray",)),
    }
    born = {"new", "sent", "delivered", "stray", "upsert"}
    to_send = [pending(name, 2, op="delete") for name in ("new", "sent", "delivered", "stray", "elder")]
    to_send.append(pending("upsert", 2))
    send, settle = never_sent(to_send, lambda item: rows.get(item.record.record_id), born)
    assert [item.record.record_id for item in settle] == ["new"]
    assert [item.record.record_id for item in send] == ["sent", "delivered", "stray", "elder", "upsert"]
