"""The conflict stage: last writer wins per field, echoes recognised, unsubscribes kept."""

from __future__ import annotations

from pipeline.stages.conflict import SENT_KEPT, observe, resolve
from schemas.contact import Contact, ContactChange, TransformedChange
from schemas.inbound import InboundChange, RecordClock

REGION = "US"


def ours(version: int, at_ms: int, **fields: object) -> TransformedChange:
    contact = Contact(id="c-1", email="ann@x.com", first_name="Ann", subscribed=True, **fields)  # type: ignore[arg-type]
    change = ContactChange(record_id="c-1", op="upsert", version=version, source_ts_ms=at_ms, captured_at_ms=at_ms,
                           contact=contact)
    return TransformedChange(change=change, verdicts=[], targets=["hubspot"])


def theirs(at_ms: int, platform_version: int | None = None, **fields: object) -> InboundChange:
    return InboundChange(record_id="c-1", provider="hubspot", platform_id="7", kind="contact.propertyChange",
                         occurred_at_ms=at_ms, received_at_ms=at_ms, fields=fields,  # type: ignore[arg-type]
                         platform_version=platform_version)


def clock_after(*changes: TransformedChange) -> RecordClock:
    clock = None
    for change in changes:
        clock = observe(clock, change) or clock
    assert clock is not None
    return clock


def test_a_later_platform_edit_wins_and_goes_out_with_the_next_version() -> None:
    """An email edited at the platform after our last change of it wins: the database gets the field
    with both times, and the platforms a change one version above ours, normalised, marked with its origin."""
    clock = clock_after(ours(100, 1_000))
    result = resolve(clock, theirs(2_000, email=" New@X.com "), REGION)
    assert result.outcome == "applied" and result.resolved is not None and result.change is not None
    assert result.resolved.fields == {"email": "new@x.com"}
    (decision,) = result.resolved.decisions
    assert (decision.platform_at_ms, decision.ours_at_ms, decision.ours_by, decision.winner) == (2_000, 1_000, "source", "platform")
    assert decision.ours_value == "ann@x.com"  # what the applier checks the table still holds
    assert (result.change.version, result.change.origin, result.change.source_ts_ms) == (101, "hubspot", 2_000)
    assert result.change.contact == Contact(id="c-1", email="new@x.com", first_name="Ann", subscribed=True)


def test_an_earlier_platform_edit_loses_to_our_later_change_of_that_field() -> None:
    """Per field: a platform change older than the time we last set the field keeps ours; a field
    we set long ago is still won by a platform change after it."""
    clock = clock_after(ours(100, 1_000), ours(200, 5_000, phone="+14155550100"))
    kept = resolve(clock, theirs(3_000, phone="+14155550199"), REGION)
    assert kept.outcome == "kept_ours" and kept.change is None
    assert kept.decisions[0].ours_at_ms == 5_000
    won = resolve(clock, theirs(3_000, first_name="Anna"), REGION)  # first_name last set at 1_000
    assert won.outcome == "applied"


def test_echoes_of_our_writes_are_recognised() -> None:
    """The values of any of our recent versions coming back are an echo, even after a newer version
    (a late echo); with the platform's version property, only that version's values are; our own
    version property alone is an echo; values equal to what the record holds are unchanged."""
    clock = clock_after(ours(100, 1_000), ours(200, 5_000, phone="+14155550100"))
    assert resolve(clock, theirs(9_000, first_name="Ann", phone="+14155550100"), REGION).outcome == "echo"
    assert resolve(clock, theirs(9_000, phone=None), REGION).outcome == "echo"  # version 100's phone, late
    assert resolve(clock, theirs(9_000, platform_version=200, phone=None), REGION).outcome == "applied"
    only_version = theirs(9_000).model_copy(update={"echo_only": True})
    assert resolve(clock, only_version, REGION).outcome == "echo"
    assert resolve(clock, theirs(9_000, platform_version=200, first_name="Ann"), REGION).outcome == "echo"


def test_an_applied_change_is_its_own_echo_and_old_versions_are_forgotten() -> None:
    """After a platform change wins, its own echoes from the other platforms are recognised; only
    the last SENT_KEPT versions are kept."""
    clock = clock_after(ours(100, 1_000))
    applied = resolve(clock, theirs(2_000, email="new@x.com"), REGION)
    assert applied.clock is not None
    assert resolve(applied.clock, theirs(3_000, platform_version=101, email="new@x.com"), REGION).outcome == "echo"
    many = clock_after(*(ours(v, v) for v in range(1, SENT_KEPT + 3)))
    assert sorted(many.sent) == list(range(3, SENT_KEPT + 3))


def test_an_unsubscribe_wins_whatever_the_clocks_say() -> None:
    """An unsubscribe at the platform wins even when its time is before our last change of the field."""
    clock = clock_after(ours(100, 10_000))
    result = resolve(clock, theirs(5_000, subscribed=False), REGION)
    assert result.outcome == "applied" and result.resolved is not None
    assert result.resolved.fields == {"subscribed": False}


def test_a_platform_delete_goes_to_the_database_only_and_echoes_of_ours_are_dropped() -> None:
    """A delete later than every field is for the database to decide (no change to the platforms);
    the echo of our own delete is dropped."""
    clock = clock_after(ours(100, 1_000))
    deleted = resolve(clock, theirs(2_000).model_copy(update={"op": "delete"}), REGION)
    assert deleted.outcome == "deleted" and deleted.change is None and deleted.resolved is not None
    gone = observe(clock, ours(200, 3_000).model_copy(update={"change": ContactChange(
        record_id="c-1", op="delete", version=200, source_ts_ms=3_000, captured_at_ms=3_000)}))
    assert gone is not None
    assert resolve(gone, theirs(4_000).model_copy(update={"op": "delete"}), REGION).outcome == "echo"


def test_a_replayed_older_change_leaves_the_row() -> None:
    """Observing an older version again changes nothing."""
    clock = clock_after(ours(200, 5_000))
    assert observe(clock, ours(100, 1_000)) is None
