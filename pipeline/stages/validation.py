"""Decode one CDC message into a canonical ContactChange, or say exactly why it cannot be.

Accepts Debezium change events with or without the ``schema``/``payload`` wrapper and the plain
``{op, id, ts, seq, data}`` form. Tombstones (no value) decode to ``None``: they only exist for
log compaction and carry nothing to deliver.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from pipeline.errors import InvalidEventError, invalid_event
from schemas.cdc import ContactRow, DebeziumChange, DebeziumEnvelope, PlainChange
from schemas.contact import Contact, ContactChange

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PLAIN_OPS = {"c": "upsert", "u": "upsert", "r": "upsert", "upsert": "upsert", "d": "delete", "delete": "delete"}


def decode_change(value: bytes | None, captured_at_ms: int) -> ContactChange | None:
    """The canonical change in ``value``; ``None`` for a tombstone; InvalidEventError otherwise."""
    if value is None:
        return None
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError(f"undecodable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidEventError(f"expected a JSON object, got {type(document).__name__}")
    try:
        if "payload" in document:
            return _from_debezium(DebeziumEnvelope.model_validate(document).payload, captured_at_ms)
        if "source" in document:
            return _from_debezium(DebeziumChange.model_validate(document), captured_at_ms)
        return _from_plain(PlainChange.model_validate(document), captured_at_ms)
    except ValidationError as exc:
        raise invalid_event(exc) from None


def _from_debezium(event: DebeziumChange, captured_at_ms: int) -> ContactChange:
    source = event.source
    version = source.lsn if source.lsn is not None else source.ts_ms * 1000
    if event.op == "d":
        return _change("delete", event.before, version, source.ts_ms, captured_at_ms)
    return _change("upsert", event.after, version, source.ts_ms, captured_at_ms)


def _from_plain(event: PlainChange, captured_at_ms: int) -> ContactChange:
    data = dict(event.data or {})
    data.setdefault("id", event.id)
    return _change(_PLAIN_OPS[event.op], data, event.ts * 1000 + event.seq, event.ts, captured_at_ms)


def _change(
    op: str, row: dict[str, Any] | None, version: int, source_ts_ms: int, captured_at_ms: int
) -> ContactChange:
    if not row or row.get("id") in (None, ""):
        raise InvalidEventError(f"{op} event has no record id")
    contact = _contact(ContactRow.model_validate(row))
    if op == "delete" and set(row) <= {"id"}:
        contact = None  # the CDC tool only knew the key
    return ContactChange(
        record_id=str(row["id"]),
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

