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

What an event may hold is limited before it is parsed (size, nesting, number literals:
``pipeline.stages.event_limits``) and when its fields are validated (record ids, versions, text
length, control characters and lone surrogates: ``schemas.cdc``). Each limit refuses the event
with an InvalidEventError naming it, so the event is dead-lettered and the stage goes on.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from pipeline.errors import InvalidEventError, invalid_event
from pipeline.stages.event_limits import limited_text
from schemas.cdc import ContactRow, DebeziumChange, DebeziumEnvelope, DebeziumSource, PlainChange
from schemas.contact import Contact, ContactChange

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIE_DIGITS = 20  # room for any tie-breaker: a Kafka offset, an unsigned 64-bit position, a binlog position
_PLAIN_OPS = {"c": "upsert", "u": "upsert", "r": "upsert", "upsert": "upsert", "d": "delete", "delete": "delete"}


def decode_change(value: bytes | None, captured_at_ms: int, offset: int) -> ContactChange | None:
    """The canonical change in ``value`` (read at ``offset`` of its partition); ``None`` for a
    tombstone; InvalidEventError otherwise."""
    if value is None:
        return None
    text = limited_text(value)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"undecodable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidEventError(f"expected a JSON object, got {type(document).__name__}")
    try:
        if "payload" in document:
            return _from_debezium(DebeziumEnvelope.model_validate(document).payload, captured_at_ms, offset)
        if "source" in document:
            return _from_debezium(DebeziumChange.model_validate(document), captured_at_ms, offset)
        return _from_plain(PlainChange.model_validate(document), captured_at_ms)
    except ValidationError as exc:
        raise invalid_event(exc) from None


def _from_debezium(event: DebeziumChange, captured_at_ms: int, offset: int) -> ContactChange:
    source = event.source
    version = source.lsn if source.lsn is not None else source.ts_ms * 10**_TIE_DIGITS + _tie(source, offset)
    if event.op == "d":
        return _change("delete", event.before, "before", version, source.ts_ms, captured_at_ms)
    return _change("upsert", event.after, "after", version, source.ts_ms, captured_at_ms)


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


def _from_plain(event: PlainChange, captured_at_ms: int) -> ContactChange:
    data = dict(event.data or {})
    data.setdefault("id", event.id)
    return _change(_PLAIN_OPS[event.op], data, "data", event.ts * 1000 + event.seq, event.ts, captured_at_ms)


def _change(
    op: str, row: dict[str, Any] | None, where: str, version: int, source_ts_ms: int, captured_at_ms: int
) -> ContactChange:
    """The change of ``row`` (the event's ``where``: before, after or data)."""
    if not row or row.get("id") in (None, ""):
        raise InvalidEventError(f"{op} event has no record id")
    try:
        validated = ContactRow.model_validate(row)
    except ValidationError as exc:
        raise invalid_event(exc, within=where) from None
    contact: Contact | None = _contact(validated)
    if op == "delete" and set(row) <= {"id"}:
        contact = None  # the CDC tool only knew the key
    return ContactChange(
        record_id=str(validated.id),
        op="delete" if op == "delete" else "upsert",
        version=version,
        source_ts_ms=source_ts_ms,
        captured_at_ms=captured_at_ms,
        contact=contact,
    )


def _contact(row: ContactRow) -> Contact:
    if row.email is not None and row.email.strip() and not _EMAIL.match(row.email.strip()):
        raise InvalidEventError(f"record {row.id}: email is not a valid address")
    return Contact(**row.model_dump(exclude={"id"}), id=str(row.id))

