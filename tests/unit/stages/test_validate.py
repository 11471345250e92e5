"""Decoding CDC events into canonical changes."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import InvalidEventError
from pipeline.stages.validate import decode_change
from schemas.cdc import MAX_TEXT_CHARS

ROW = {"id": 7, "email": "Ann@Example.com", "first_name": "Ann", "contact_type": "lead", "extra_col": 1}


def debezium(op: str, *, before=None, after=None, lsn=100, ts_ms=1_700_000_000_000) -> dict:
    return {"op": op, "before": before, "after": after, "source": {"ts_ms": ts_ms, "lsn": lsn}, "ts_ms": ts_ms}


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def test_debezium_create_with_and_without_wrapper_decode_the_same() -> None:
    """The schema/payload wrapper is optional and changes nothing in the result."""
    bare = decode_change(encode(debezium("c", after=ROW)), captured_at_ms=5, offset=0)
    wrapped = decode_change(encode({"schema": {"type": "struct"}, "payload": debezium("c", after=ROW)}), 5, 0)
    assert bare == wrapped
    assert bare is not None
    assert (bare.record_id, bare.op, bare.version, bare.captured_at_ms) == ("7", "upsert", 100, 5)
    assert bare.contact is not None and bare.contact.email == "Ann@Example.com"


def test_snapshot_read_is_an_upsert_and_delete_uses_before_image() -> None:
    """Snapshot `r` events upsert; `d` events delete the record named in `before`."""
    read = decode_change(encode(debezium("r", after=ROW)), 0, 0)
    deleted = decode_change(encode(debezium("d", before=ROW, lsn=200)), 0, 0)
    assert read is not None and read.op == "upsert"
    assert deleted is not None and (deleted.op, deleted.record_id, deleted.version) == ("delete", "7", 200)
    assert deleted.contact is not None


def test_only_an_insert_at_the_source_is_marked_created() -> None:
    """Debezium's and the plain form's ``c`` say the row was inserted; a snapshot read or an update
    (or an ``upsert`` of the plain form, which does not say) does not."""
    def created(document: dict) -> bool:
        change = decode_change(encode(document), 0, 0)
        assert change is not None
        return change.created

    plain = {"id": "7", "ts": 1, "seq": 1, "data": {"email": "ann@example.com"}}
    assert created(debezium("c", after=ROW)) and created({**plain, "op": "c"})
    assert not any(created(document) for document in (
        debezium("r", after=ROW), debezium("u", after=ROW), {**plain, "op": "u"}, {**plain, "op": "upsert"},
    ))


def test_delete_with_key_only_before_image_carries_no_contact() -> None:
    """A delete whose before-image holds only the key has no contact to route by."""
    deleted = decode_change(encode(debezium("d", before={"id": 7})), 0, 0)
    assert deleted is not None and deleted.contact is None


def version(source: dict[str, object], offset: int) -> int:
    """The version of an update of ROW whose ``source`` block is ``source`` (no LSN), read at ``offset``."""
    change = decode_change(encode({"op": "u", "after": ROW, "source": source}), 0, offset)
    assert change is not None
    return change.version


def test_without_lsn_changes_in_one_millisecond_are_ordered_by_their_offset() -> None:
    """Without an LSN or a log position, the source time orders changes and the partition offset
    breaks ties: two changes of a record in one millisecond no longer share a version."""
    first, second = version({"ts_ms": 1234}, 41), version({"ts_ms": 1234}, 42)
    assert first < second and first == 1234 * 10**20 + 41
    assert version({"ts_ms": 1235}, 0) > second
    assert first > 1234 * 1000 + 999  # above any version of the former ts_ms * 1000 scheme


def test_mysql_changes_are_ordered_by_binlog_coordinates_within_a_millisecond() -> None:
    """MySQL's file, position and row order changes within one millisecond, across a binlog
    rotation too; an event the connector emits again gets the same version, wherever it lands;
    a snapshot read ranks before a change streamed from the same coordinates."""
    def binlog(file: str, pos: int, row: int, snapshot: str = "false") -> dict[str, object]:
        return {"ts_ms": 1234, "connector": "mysql", "file": file, "pos": pos, "row": row, "snapshot": snapshot}

    ordered = [binlog("mysql-bin.000003", 900, 0, snapshot="last"), binlog("mysql-bin.000003", 900, 0),
               binlog("mysql-bin.000003", 900, 1), binlog("mysql-bin.000003", 4_294_967_000, 0),
               binlog("mysql-bin.000004", 4, 0)]
    versions = [version(source, offset) for source, offset in zip(ordered, (50, 40, 30, 20, 10), strict=True)]
    assert versions == sorted(set(versions))
    assert version(ordered[2], 99) == versions[2]
    assert version({**ordered[0], "ts_ms": 1235}, 0) > max(versions)


def test_debezium_sequence_orders_changes_within_a_millisecond() -> None:
    """The last position of source.sequence breaks ties; an unreadable sequence falls back to the offset."""
    earlier = version({"ts_ms": 1234, "sequence": '["100","205"]'}, 9)
    later = version({"ts_ms": 1234, "sequence": '["205","310"]'}, 8)
    assert earlier < later and earlier == version({"ts_ms": 1234, "sequence": '["100","205"]'}, 70)
    assert version({"ts_ms": 1234, "sequence": "[null, \"x\"]"}, 7) == 1234 * 10**20 + 7


def test_plain_form_uses_ts_and_sequence_as_version() -> None:
    """The plain {op,id,ts,seq,data} form decodes with version ts*1000+seq."""
    change = decode_change(encode({"op": "upsert", "id": "a1", "ts": 10, "seq": 3, "data": {"email": "x@y.io"}}), 0, 0)
    assert change is not None and (change.record_id, change.version) == ("a1", 10_003)


def test_tombstone_decodes_to_nothing() -> None:
    """A tombstone (no value) is not a change."""
    assert decode_change(None, 0, 0) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "undecodable JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (encode(debezium("c", after={"email": "a@b.co"})), "no record id"),
        (encode(debezium("c", after={**ROW, "email": "not-an-email"})), "email is not a valid address"),
        (encode({**debezium("c", after=ROW), "op": "x"}), "invalid event: op"),
    ],
)
def test_poison_events_are_rejected_with_a_reason(value: bytes, reason: str) -> None:
    """Each kind of poison event raises InvalidEventError that says what is wrong."""
    with pytest.raises(InvalidEventError, match=reason):
        decode_change(value, 0, 0)


def test_rejection_reason_never_echoes_the_email() -> None:
    """The reason goes into headers and logs, so it must not contain the address."""
    with pytest.raises(InvalidEventError) as caught:
        decode_change(encode(debezium("c", after={**ROW, "email": "secret-person@@x"})), 0, 0)
    assert "secret-person" not in str(caught.value)


@pytest.mark.parametrize(
    ("record_id", "reason"),
    [
        (True, "invalid event: after.id: Value error, a record id is a string or an integer, not a boolean"),
        (1.0, "invalid event: after.id: Value error, a record id is a string or an integer, not a float"),
        ("  ", "invalid event: after.id: Value error, a record id cannot be empty or blank"),
        ("c-1\n", "invalid event: after.id: Value error, a record id cannot hold a control character (U+000A)"),
        ("c-\x001", "invalid event: after.id: Value error, a record id cannot hold a control character (U+0000)"),
    ],
)
def test_a_record_id_is_a_clean_string_or_an_integer(record_id: object, reason: str) -> None:
    """Booleans and floats are not ids (true would become "True"); blank ids and control characters neither."""
    with pytest.raises(InvalidEventError) as caught:
        decode_change(encode(debezium("c", after={**ROW, "id": record_id})), 0, 0)
    assert str(caught.value) == reason


def test_integer_and_string_ids_name_the_same_record() -> None:
    """Id 7 and id "7" are one record, "7"."""
    as_int = decode_change(encode(debezium("c", after={**ROW, "id": 7})), 0, 0)
    as_str = decode_change(encode(debezium("c", after={**ROW, "id": "7"})), 0, 0)
    assert as_int is not None and as_str is not None and as_int.record_id == as_str.record_id == "7"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ({"ts_ms": 1, "lsn": -1}, "invalid event: payload.source.lsn: Input should be greater than or equal to 0"),
        ({"ts_ms": 1, "lsn": True}, "invalid event: payload.source.lsn: Input should be a valid integer"),
        ({"ts_ms": -5}, "invalid event: payload.source.ts_ms: Input should be greater than or equal to 0"),
        ({"ts_ms": 1.5e12}, "invalid event: payload.source.ts_ms: Input should be a valid integer"),
        ({"ts_ms": 1, "file": "bin.1", "pos": -4}, "invalid event: payload.source.pos: Input should be greater"),
    ],
)
def test_versions_are_non_negative_integers(source: dict[str, object], reason: str) -> None:
    """A negative LSN, time or position, or one given as a boolean or float, is refused."""
    with pytest.raises(InvalidEventError) as caught:
        decode_change(encode({"payload": {"op": "c", "after": ROW, "source": source}}), 0, 0)
    assert str(caught.value).startswith(reason)


def test_plain_form_versions_are_non_negative_integers() -> None:
    """The plain form's ts and seq follow the same rule."""
    for bad in ({"ts": -1}, {"ts": 10, "seq": -1}, {"ts": True}):
        with pytest.raises(InvalidEventError, match="invalid event: (ts|seq): Input should be"):
            decode_change(encode({"op": "upsert", "id": "a1", "ts": 10, "data": {}} | bad), 0, 0)


def test_control_characters_in_text_are_refused_naming_the_field() -> None:
    """A NUL inside an email is refused (it never reaches a provider), naming the field, not the address."""
    with pytest.raises(InvalidEventError) as caught:
        decode_change(encode(debezium("c", after={**ROW, "email": "ann\x00@example.com"})), 0, 0)
    assert str(caught.value) == "invalid event: after.email: Value error, holds a control character (U+0000)"
    with pytest.raises(InvalidEventError, match=r"after.company: Value error, holds a control character \(U\+0085\)"):
        decode_change(encode(debezium("c", after={**ROW, "company": "Acme\x85"})), 0, 0)


def test_tab_and_newlines_are_allowed_in_text() -> None:
    """Tab, line feed and carriage return are white space a title may hold."""
    change = decode_change(encode(debezium("c", after={**ROW, "title": "Head of\tSales\r\n"})), 0, 0)
    assert change is not None and change.contact is not None and change.contact.title == "Head of\tSales\r\n"


def test_a_lone_surrogate_is_refused() -> None:
    """The six bytes \\ud800 decode to a string no encoder can write: refused, named, instead of
    failing when the change is written."""
    value = encode(debezium("c", after=ROW)).replace(b'"Ann"', b'"\\ud800"')
    with pytest.raises(InvalidEventError) as caught:
        decode_change(value, 0, 0)
    assert str(caught.value) == "invalid event: after.first_name: Value error, holds a lone surrogate (U+D800)"
    paired = decode_change(encode(debezium("c", after={**ROW, "first_name": "Ann \U0001f600"})), 0, 0)
    assert paired is not None and '"Ann \U0001f600"' in paired.model_dump_json()


def test_a_huge_field_is_refused_so_the_validated_change_stays_small() -> None:
    """A 1 MB first name is refused (the validated change could not be produced), and so is a 100 KB
    one in a message within the size limit."""
    with pytest.raises(InvalidEventError, match=r"^message of 1,000,\d{3} bytes is larger than the limit of 1,000,000 bytes$"):
        decode_change(encode(debezium("c", after={**ROW, "first_name": "A" * 1_000_000})), 0, 0)
    with pytest.raises(InvalidEventError) as caught:
        decode_change(encode(debezium("c", after={**ROW, "first_name": "A" * 100_000})), 0, 0)
    assert str(caught.value) == f"invalid event: after.first_name: String should have at most {MAX_TEXT_CHARS} characters"
    longest = {**ROW, **{field: "é" * MAX_TEXT_CHARS for field in ("first_name", "last_name", "company", "title")}}
    change = decode_change(encode(debezium("c", after=longest)), 0, 0)
    assert change is not None and len(change.model_dump_json().encode()) < 20_000


def test_a_nested_sequence_falls_back_to_the_offset() -> None:
    """A source.sequence that is not a flat array is not parsed (it could nest 100,000 deep)."""
    assert version({"ts_ms": 1234, "sequence": "[" * 500 + "]" * 500}, 7) == 1234 * 10**20 + 7
