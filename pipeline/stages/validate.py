"""Decode one CDC message into a canonical ContactChange, or say exactly why it cannot be.

Accepts Debezium change events with or without the ``schema``/``payload`` wrapper and the plain
``{op, id, ts, seq, data}`` form. Tombstones (no value) decode to ``None``: they only exist for
log compaction and carry nothing to deliver.

The version orders the changes of one record; two changes never share one. What orders them:

* ``source.lsn`` (Postgres, and a backfill given ``--lsn``): the version is the LSN.
* Otherwise ``source.ts_ms`` first, then a tie-breaker for changes within one millisecond:
  ``ts_ms * 10**20 + tie``. The tie-breaker is the connector's own position in its log when it
  gives one, so that an event the connector emits again gets the same version:

  - ``file``/``pos``/``row`` (MySQL and MariaDB binlog coordinates): the file's number, the
    event's position and the row in the event (6 + 10 + 4 digits, each part's low digits: only
    changes within one millisecond are told apart by it). A snapshot read ranks before a change
    streamed from the same coordinates. GTIDs are not used: they order one server's
    transactions, no better than its binlog.
  - ``sequence`` (Debezium's generic field, a JSON array of positions as strings, such as
    ``'["<last commit lsn>","<lsn>"]'``): its last element, the change's own position.
  - anything else (SQL Server, Oracle, MongoDB, Db2, a backfill without ``--lsn``): the
    message's offset in its ``contacts.cdc`` partition, where the record's changes stand in
    source order (the record id is the key).

  Starting from ``ts_ms`` keeps these versions above those of the former ``ts_ms * 1000`` scheme
  (rows already in the version guard) and comparable with a backfill's snapshot time. It assumes
  the source time does not go back between two changes of one record (a commit time does not).
* The plain form: ``ts * 1000 + seq``.

A row's columns are read as contact fields through the source mapping
(``pipeline.stages.source_mapping``); NULL in a flag column is false. What real Debezium output
holds besides row changes, on purpose:

* an unchanged TOASTed column (REPLICA IDENTITY DEFAULT) arrives as ``__debezium_unavailable_value``:
  the field is left out of the contact and named in ``unavailable_fields``, so the transform stage
  keeps its last known value; the placeholder never reaches a platform;
* a delete whose ``before`` holds only the key (the rest NULL or defaults) carries no contact: the
  transform stage routes it by the last known one;
* an update of the primary key arrives as a delete of the old key and a create of the new one, on
  different partitions and in no order between them. The create's ``__debezium.oldkey`` header
  names the old key; its value in the mapping's key column becomes the change's ``replaces``, which
  the adapters use where the platform keys the record by its email (docs/postgres-source.md);
* a truncate (``op: t``) is refused with its reason, so it is dead-lettered: the platforms keep the
  records until they are deleted one by one (the connector must not skip truncates, see
  ``pipeline.dev.local_connect``); a logical decoding message (``op: m``) likewise;
* heartbeats (``{"ts_ms": ...}``) and transaction metadata (``status`` BEGIN/END) are not changes and
  are consumed quietly, like tombstones (the connector writes them to other topics anyway);
* columns added or dropped while the connector runs: unmapped columns are ignored, a mapped column
  that is gone leaves its field empty.

What an event may hold is limited before it is parsed (size, nesting, number literals:
``pipeline.stages.event_limits``) and when its fields are validated (record ids, versions, text
length, control characters and lone surrogates: ``schemas.cdc``). Each limit refuses the event
with an InvalidEventError naming it, so the event is dead-lettered and the stage goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pydantic_core
from pydantic import ValidationError

from pipeline.errors import InvalidEventError, invalid_event
from pipeline.stages.event_limits import limited_text
from pipeline.stages.source_mapping import IDENTITY, TEXT_FIELDS, SourceMapping
from schemas.cdc import ContactFields, ContactRow, DebeziumChange, DebeziumEnvelope, DebeziumSource, PlainChange
from schemas.contact import Contact, ContactChange

UNAVAILABLE = "__debezium_unavailable_value"  # Debezium's unavailable.value.placeholder default
OLD_KEY_HEADER = "__debezium.oldkey"  # on the create of a primary-key update: the old key, as JSON

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTACT_FIELDS = tuple(ContactFields.model_fields)  # pydantic's model_fields costs a lookup on every read
_TIE_DIGITS = 20  # room for any tie-breaker: a Kafka offset, an unsigned 64-bit position, a binlog position
_PLAIN_OPS = {"c": "upsert", "u": "upsert", "r": "upsert", "upsert": "upsert", "d": "delete", "delete": "delete"}


def decode_change(
    value: bytes | None, captured_at_ms: int, offset: int, mapping: SourceMapping = IDENTITY,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> ContactChange | None:
    """The canonical change in ``value`` (read at ``offset`` of its partition with ``headers``, its
    row read through ``mapping``); ``None`` for a tombstone, a heartbeat or transaction metadata;
    InvalidEventError otherwise."""
    change = _decode(value, captured_at_ms, offset, mapping)
    if change is None or change.op != "upsert":
        return change
    replaces = replaced_record(headers, mapping)
    return change.model_copy(update={"replaces": replaces}) if replaces not in (None, change.record_id) else change


def replaced_record(headers: Sequence[tuple[str, bytes | None]], mapping: SourceMapping) -> str | None:
    """The record id in the ``__debezium.oldkey`` header (the key a primary-key update moved the
    record from), read through the mapping's key column; None without the header, or when the old
    key has no such column (the key is not the record id, so the id did not change)."""
    raw = next((header_value for name, header_value in headers if name == OLD_KEY_HEADER), None)
    if raw is None:
        return None
    try:
        old_key = json.loads(limited_text(raw))
    except (json.JSONDecodeError, InvalidEventError) as exc:
        raise InvalidEventError(f"header {OLD_KEY_HEADER} is not a JSON key: {exc}") from None
    record_id = old_key.get(mapping.key_column) if isinstance(old_key, dict) else None
    return None if record_id in (None, "") else str(record_id)


def _decode(value: bytes | None, captured_at_ms: int, offset: int, mapping: SourceMapping) -> ContactChange | None:
    if value is None:
        return None
    document = _parsed(limited_text(value))
    if not isinstance(document, dict):
        raise InvalidEventError(f"expected a JSON object, got {type(document).__name__}")
    payload = document.get("payload", document)
    if isinstance(payload, dict) and _not_a_change(payload):
        return None
    try:
        if "payload" in document:
            event = DebeziumEnvelope.model_validate(document).payload
            return _from_debezium(event, captured_at_ms, offset, mapping)
        if "source" in document:
            return _from_debezium(DebeziumChange.model_validate(document), captured_at_ms, offset, mapping)
        return _from_plain(PlainChange.model_validate(document), captured_at_ms, mapping)
    except ValidationError as exc:
        raise invalid_event(exc) from None


def _parsed(text: str) -> Any:
    """``text`` parsed as JSON, as ``json.loads`` parses it. pydantic's parser first, at half the cost;
    what it refuses goes to ``json.loads``, which either takes it (a lone surrogate escape, refused
    later with its own reason) or says why not."""
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"undecodable JSON: {exc}") from None


def _not_a_change(payload: dict[str, Any]) -> bool:
    """True for a heartbeat or transaction metadata; InvalidEventError for a truncate or a message."""
    op = payload.get("op")
    if op == "t":
        table = (payload.get("source") or {}).get("table") if isinstance(payload.get("source"), dict) else None
        raise InvalidEventError(
            f"truncate of table {table or '?'} (op t): contactsync does not delete records at the platforms "
            "for a truncate; delete them there, or delete the rows instead of truncating"
        )
    if op == "m":
        raise InvalidEventError("a logical decoding message (op m), not a row change")
    if op is not None:
        return False
    return set(payload) == {"ts_ms"} or (payload.get("status") in ("BEGIN", "END") and "id" in payload)


def _from_debezium(event: DebeziumChange, captured_at_ms: int, offset: int, mapping: SourceMapping) -> ContactChange:
    source = event.source
    version = source.lsn if source.lsn is not None else source.ts_ms * 10**_TIE_DIGITS + _tie(source, offset)
    if event.op == "d":
        return _change("delete", event.before, "before", version, source.ts_ms, captured_at_ms, mapping)
    change = _change("upsert", event.after, "after", version, source.ts_ms, captured_at_ms, mapping)
    return change.model_copy(update={"created": True}) if event.op == "c" else change


def _tie(source: DebeziumSource, offset: int) -> int:
    """What orders changes within one millisecond of ``source.ts_ms`` (see the module docstring)."""
    binlog = _binlog_position(source)
    if binlog is not None:
        return binlog
    sequence = _sequence_position(source.sequence)
    return sequence if sequence is not None else offset


def _binlog_position(source: DebeziumSource) -> int | None:
    if source.file is None or source.pos is None:
        return None
    number = source.file.rpartition(".")[2]
    if not number.isdigit():
        return None
    slot = 0 if source.snapshot not in (None, False, "false") else (source.row or 0) + 1
    return (int(number) % 10**6 * 10**10 + source.pos % 10**10) * 10**4 + slot % 10**4


def _sequence_position(sequence: str | None) -> int | None:
    if sequence is None or sequence.count("[") + sequence.count("{") > 1:
        return None  # not a flat array of positions (and json.loads must not recurse on it)
    try:
        parsed = json.loads(sequence)
        position = int(parsed[-1] if isinstance(parsed, list) else parsed)
    except (ValueError, TypeError, IndexError):  # JSONDecodeError is a ValueError
        return None
    return position if 0 <= position < 10**_TIE_DIGITS else None


def _from_plain(event: PlainChange, captured_at_ms: int, mapping: SourceMapping) -> ContactChange:
    data = dict(event.data or {})
    data.setdefault(mapping.key_column, event.id)
    version = event.ts * 1000 + event.seq
    change = _change(_PLAIN_OPS[event.op], data, "data", version, event.ts, captured_at_ms, mapping)
    return change.model_copy(update={"created": True}) if event.op == "c" else change


def _change(
    op: str, row: dict[str, Any] | None, where: str, version: int, source_ts_ms: int, captured_at_ms: int,
    mapping: SourceMapping,
) -> ContactChange:
    """The change of ``row`` (the event's ``where``: before, after or data)."""
    fields = mapping.fields_of(row or {})
    if fields.get("id") in (None, "", UNAVAILABLE):
        raise InvalidEventError(f"{op} event has no record id (column {mapping.key_column})")
    unavailable = tuple(name for name, value in fields.items() if value == UNAVAILABLE)
    try:
        validated = ContactRow.model_validate({name: fields[name] for name in fields if name not in unavailable})
    except ValidationError as exc:
        raise invalid_event(exc, within=where) from None
    contact: Contact | None = _contact(validated)
    if op == "delete" and not any(getattr(validated, name) for name in TEXT_FIELDS):
        contact = None  # the CDC tool only knew the key (the rest of the row is NULL or defaults)
    return ContactChange(
        record_id=str(validated.id),
        op="delete" if op == "delete" else "upsert",
        version=version,
        source_ts_ms=source_ts_ms,
        captured_at_ms=captured_at_ms,
        contact=contact,
        unavailable_fields=unavailable if contact is not None else (),
    )


def _contact(row: ContactRow) -> Contact:
    if row.email is not None and row.email.strip() and not _EMAIL.match(row.email.strip()):
        raise InvalidEventError(f"record {row.id}: email is not a valid address")
    return Contact(**{name: getattr(row, name) for name in _CONTACT_FIELDS}, id=str(row.id))

