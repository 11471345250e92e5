"""What one platform change writes to its row: only its fields, in the mapping's columns, never over a
later change, nothing on a replay."""

from __future__ import annotations

from typing import Any

from pipeline.stages.apply import ROW, held_values, plan_write
from pipeline.stages.source_mapping import IDENTITY, SourceMapping
from schemas.inbound import FieldDecision, InboundResolved

MAPPING = SourceMapping.model_validate(
    {"columns": {"id": "person_no", "email": "mail", "subscribed": "opted_in", "phone": None, "contact_type": "kind"},
     "contact_types": {"L": "lead", "C": "customer"}}
)


def change(
    at_ms: int, *, op: str = "upsert", new_record: bool = False, ours: dict[str, Any] | None = None, **fields: Any
) -> InboundResolved:
    """A change the platform won, for each field against ``ours[field]`` (set at 1 ms) or against nothing."""
    ours = ours or {}
    decisions = [FieldDecision(field=name, value=value, platform_at_ms=at_ms, ours_at_ms=1 if name in ours else None,
                               ours_by="source", ours_value=ours.get(name), winner="platform")
                 for name, value in fields.items()]
    return InboundResolved(record_id="7", provider="hubspot", platform_id="70", new_record=new_record, op=op,  # type: ignore[arg-type]
                           occurred_at_ms=at_ms, version=2, fields=fields, decisions=decisions)


def test_only_the_carried_fields_are_written_in_the_mapped_columns_with_their_times() -> None:
    """An unsubscribe and a new email set `opted_in` and `mail` and stamp both fields with the change's time."""
    write = plan_write(change(5_000, email="new@x.com", subscribed=False), MAPPING, {}, None)
    assert (write.action, write.insert) == ("upsert", False)
    assert write.columns == {"mail": "new@x.com", "opted_in": False}
    assert write.times == {"email": 5_000, "subscribed": 5_000}


def test_a_contact_type_is_written_in_the_tables_own_code() -> None:
    """`lead` goes into the type column as `L`, the code the mapping reads as lead; an unknown type as it is."""
    assert plan_write(change(1, contact_type="lead"), MAPPING, {}, None).columns == {"kind": "L"}
    assert plan_write(change(1, contact_type="partner"), MAPPING, {}, None).columns == {"kind": "partner"}


def test_an_older_change_or_a_replay_writes_nothing_over_a_later_one() -> None:
    """A field applied at 5,000 is not written by a change of 4,000 nor by the same change again; the
    change's other, newer field still is."""
    applied = {"email": 5_000}
    assert plan_write(change(4_000, email="old@x.com"), IDENTITY, applied, None).action == "nothing"
    replay = plan_write(change(5_000, email="new@x.com"), IDENTITY, applied, None)
    assert (replay.action, replay.older) == ("nothing", ("email",))
    applied = {"email": 5_000, "first_name": 3_000}
    mixed = plan_write(change(4_000, email="old@x.com", first_name="Ann"), IDENTITY, applied, None)
    assert (mixed.columns, mixed.older) == ({"first_name": "Ann"}, ("email",))


def test_a_field_the_table_has_no_column_for_is_left_out() -> None:
    """The mapping says the table has no phone column: a phone edit writes nothing and says so."""
    write = plan_write(change(1, phone="+14155550100"), MAPPING, {}, None)
    assert (write.action, write.unmapped) == ("nothing", ("phone",))


def test_a_contact_created_at_a_platform_may_be_inserted() -> None:
    """A new record's write may insert the row."""
    write = plan_write(change(1, new_record=True, email="a@x.com"), IDENTITY, {}, None)
    assert (write.action, write.insert, write.columns) == ("upsert", True, {"email": "a@x.com"})


def test_a_delete_is_kept_and_older_changes_do_not_bring_the_row_back() -> None:
    """A delete later than every applied field deletes the row and stamps it; an edit older than the delete
    writes nothing; a delete older than an applied field deletes nothing."""
    delete = plan_write(change(6_000, op="delete"), IDENTITY, {"email": 5_000}, None)
    assert (delete.action, delete.times) == ("delete", {ROW: 6_000})
    assert plan_write(change(5_500, email="x@x.com"), IDENTITY, {ROW: 6_000}, None).action == "nothing"
    assert plan_write(change(4_000, op="delete"), IDENTITY, {"email": 5_000}, None).action == "nothing"


def test_a_field_the_table_changed_since_the_decision_keeps_the_tables_value() -> None:
    """The conflict stage decided the phone against +14155550100; the table now holds another number (its
    own later write, on its way through CDC): the phone is left as the table has it, the name still written."""
    edit = change(5_000, ours={"phone": "+14155550100", "first_name": "Ann"}, phone="+14155550111", first_name="Annie")
    held = held_values({"id": "7", "phone": "(415) 555-0122", "first_name": "Ann"}, IDENTITY, "US")
    write = plan_write(edit, IDENTITY, {}, held)
    assert (write.columns, write.changed_in_table) == ({"first_name": "Annie"}, ("phone",))
    unchanged = held_values({"id": "7", "phone": "415-555-0100", "first_name": "Ann"}, IDENTITY, "US")
    assert plan_write(edit, IDENTITY, {}, unchanged).columns == {"phone": "+14155550111", "first_name": "Annie"}
