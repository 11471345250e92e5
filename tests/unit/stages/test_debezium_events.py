"""What real Debezium PostgreSQL output holds, decoded through a source mapping of a table whose
columns are not named like the contact's fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.errors import InvalidEventError
from pipeline.settings import RoutingSettings
from pipeline.stages.source_mapping import SourceMapping
from pipeline.stages.transform import transform
from pipeline.stages.validate import UNAVAILABLE, decode_change
from schemas.contact import ContactChange

MAPPING = SourceMapping.model_validate({
    "columns": {"id": "contact_no", "email": "mail", "first_name": "given", "last_name": "family",
                "company": "org", "title": "job", "phone": None, "contact_type": "kind",
                "subscribed": "opted_in", "do_not_sync": "blocked"},
    "contact_types": {"L": "lead", "C": "customer"},
})
ROW = {"contact_no": 3, "mail": "ann@example.com", "given": "Ann", "family": "Lee", "org": "Acme", "job": "CTO",
       "kind": "C", "opted_in": True, "blocked": False, "notes": "x" * 50}
SOURCE = {"version": "3.6.1.Final", "connector": "postgresql", "name": "contactsync", "ts_ms": 1_767_000_000_000,
          "snapshot": "false", "db": "app", "sequence": '["24023928","24024216"]', "schema": "public",
          "table": "crm_people", "txId": 750, "lsn": 24_024_216, "xmin": None}


def event(op: str, *, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
          lsn: int = 24_024_216, schemas: bool = False) -> bytes:
    payload = {"before": before, "after": after, "source": {**SOURCE, "lsn": lsn}, "transaction": None,
               "op": op, "ts_ms": 1_767_000_000_100, "ts_us": 1_767_000_000_100_000}
    document = {"schema": {"type": "struct", "name": "contactsync.public.crm_people.Envelope"}, "payload": payload}
    return json.dumps(document if schemas else payload).encode()


def decode(value: bytes) -> ContactChange | None:
    return decode_change(value, captured_at_ms=0, offset=0, mapping=MAPPING)


@pytest.mark.parametrize("schemas", [False, True])
def test_a_mapped_row_becomes_the_contact_with_its_type_translated(schemas: bool) -> None:
    """Columns are read by the mapping, `C` stands for customer; both schemas.enable values decode."""
    change = decode(event("c", after=ROW, schemas=schemas))
    assert change is not None and change.contact is not None
    assert (change.record_id, change.version) == ("3", 24_024_216)
    assert change.contact.model_dump() == {
        "id": "3", "email": "ann@example.com", "phone": None, "first_name": "Ann", "last_name": "Lee",
        "company": "Acme", "title": "CTO", "contact_type": "customer", "subscribed": True, "do_not_sync": False,
    }


def test_null_in_a_flag_column_means_false() -> None:
    """A nullable boolean column holding NULL is false, not an invalid event (the backfill agrees)."""
    change = decode(event("u", after={**ROW, "opted_in": None, "blocked": None}))
    assert change is not None and change.contact is not None
    assert (change.contact.subscribed, change.contact.do_not_sync) == (False, False)


def test_an_unchanged_toasted_column_is_named_unavailable_and_keeps_its_last_known_value() -> None:
    """Debezium's placeholder never reaches the contact: the field keeps what the record last had."""
    first = decode(event("c", after=ROW, lsn=10))
    update = decode(event("u", after={**ROW, "given": "Anna", "job": UNAVAILABLE}, lsn=20))
    assert first is not None and update is not None and update.contact is not None
    assert update.unavailable_fields == ("title",) and update.contact.title is None
    _, known = transform(first, None, RoutingSettings(), ("hubspot",))
    result, _ = transform(update, known, RoutingSettings(), ("hubspot",))
    assert result.change.contact is not None
    assert (result.change.contact.first_name, result.change.contact.title) == ("Anna", "CTO")
    assert UNAVAILABLE not in result.change.model_dump_json()


def test_a_toasted_column_with_no_known_value_stays_empty_and_is_named() -> None:
    update = decode(event("u", after={**ROW, "job": UNAVAILABLE}))
    assert update is not None
    result, _ = transform(update, None, RoutingSettings(), ("hubspot",))
    assert result.change.contact is not None and result.change.contact.title is None
    assert [dropped.field for dropped in result.dropped_fields] == ["title"]


def test_a_primary_key_update_is_a_delete_of_the_old_key_and_a_create_of_the_new() -> None:
    """REPLICA IDENTITY DEFAULT: the delete's before holds the old key and NULLs (defaults for NOT NULL)."""
    old_key = {column: None for column in ROW} | {"contact_no": 3, "blocked": False}
    deleted = decode(event("d", before=old_key, lsn=30))
    created = decode(event("c", after={**ROW, "contact_no": 4}, lsn=30))
    assert deleted is not None and (deleted.op, deleted.record_id, deleted.contact) == ("delete", "3", None)
    assert created is not None and (created.op, created.record_id) == ("upsert", "4")
    assert created.replaces is None  # no header: nothing says it replaces a record


def test_the_create_of_a_primary_key_update_names_the_record_it_replaces() -> None:
    """Debezium's __debezium.oldkey header on the create is read through the mapping's key column;
    the delete's __debezium.newkey changes nothing."""
    old_key = {column: None for column in ROW} | {"contact_no": 3, "blocked": False}
    created = decode_change(event("c", after={**ROW, "contact_no": 30}), captured_at_ms=0, offset=0,
                            mapping=MAPPING, headers=[("__debezium.oldkey", b'{"contact_no":3}')])
    deleted = decode_change(event("d", before=old_key), captured_at_ms=0, offset=0,
                            mapping=MAPPING, headers=[("__debezium.newkey", b'{"contact_no":30}')])
    assert created is not None and (created.record_id, created.replaces) == ("30", "3")
    assert deleted is not None and (deleted.op, deleted.record_id, deleted.replaces) == ("delete", "3", None)


@pytest.mark.parametrize("old_key", [b'{"person_no":3}', b'{"contact_no":null}', b"[3]"])
def test_an_old_key_without_the_key_column_replaces_nothing(old_key: bytes) -> None:
    """A key whose columns do not include the mapped id column does not name a record id."""
    created = decode_change(event("c", after=ROW), captured_at_ms=0, offset=0, mapping=MAPPING,
                            headers=[("__debezium.oldkey", old_key)])
    assert created is not None and created.replaces is None


def test_an_old_key_header_that_is_not_json_is_refused_with_its_reason() -> None:
    with pytest.raises(InvalidEventError, match="header __debezium.oldkey is not a JSON key"):
        decode_change(event("c", after=ROW), captured_at_ms=0, offset=0, mapping=MAPPING,
                      headers=[("__debezium.oldkey", b"{contact_no=3}")])


def test_a_truncate_is_refused_with_its_reason() -> None:
    with pytest.raises(InvalidEventError, match=r"truncate of table crm_people \(op t\)"):
        decode(event("t"))


def test_a_logical_decoding_message_is_refused_with_its_reason() -> None:
    message = {"op": "m", "ts_ms": 1, "source": SOURCE, "message": {"prefix": "audit", "content": "eA=="}}
    with pytest.raises(InvalidEventError, match=r"logical decoding message \(op m\)"):
        decode(json.dumps(message).encode())


@pytest.mark.parametrize("value", [
    {"ts_ms": 1_767_000_000_000},
    {"schema": {"type": "struct"}, "payload": {"ts_ms": 1_767_000_000_000}},
    {"status": "BEGIN", "id": "750:24023928", "event_count": None, "data_collections": None, "ts_ms": 1},
    {"status": "END", "id": "750:24023928", "event_count": 2,
     "data_collections": [{"data_collection": "public.crm_people", "event_count": 2}], "ts_ms": 1},
])
def test_heartbeats_and_transaction_metadata_are_not_changes(value: dict[str, Any]) -> None:
    assert decode(json.dumps(value).encode()) is None


def test_a_column_added_or_dropped_while_the_connector_runs_is_tolerated() -> None:
    """A new column is ignored; a mapped column that is gone leaves its field empty."""
    added = decode(event("u", after={**ROW, "loyalty_tier": "gold"}))
    dropped = decode(event("u", after={k: v for k, v in ROW.items() if k != "job"}))
    assert added is not None and added.contact is not None and added.contact.title == "CTO"
    assert dropped is not None and dropped.contact is not None and dropped.contact.title is None


def test_a_number_in_a_text_column_is_text() -> None:
    """decimal.handling.mode=string or double: a numeric column mapped to a text field reads as text."""
    change = decode(event("u", after={**ROW, "job": 12.5}))
    assert change is not None and change.contact is not None and change.contact.title == "12.5"


def test_an_event_without_the_key_column_names_it() -> None:
    with pytest.raises(InvalidEventError, match="no record id \\(column contact_no\\)"):
        decode(event("c", after={k: v for k, v in ROW.items() if k != "contact_no"}))
