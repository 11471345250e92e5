"""What CDC producers put on ``contacts.cdc``: Debezium change events and a plain form.

Input models tolerate extra columns and fields (the source table may grow); our own messages do not.
The fields that are kept are strict, so that odd input is refused with a reason rather than
turned into something else:

* A record id is a string or an integer: not a boolean (``true`` would become record ``"True"``),
  not a float (``1.0`` would become ``"1.0"``), never empty or blank, no control character at all.
* Versions and positions (``lsn``, ``ts_ms``, ``ts``, ``seq``, ``pos``, ``row``) are integers
  (not booleans, floats or numeric strings), never negative, times before the year 10000 and
  positions below 2**64.
* Text (the contact's fields, the source's names and positions) is at most ``MAX_TEXT_CHARS``
  characters, and holds no control character other than tab, line feed and carriage return (none
  of C0 U+0000-U+001F otherwise, DEL U+007F, C1 U+0080-U+009F) and no lone surrogate
  (U+D800-U+DFFF, which only a ``\\ud800`` escape can produce and no encoder can write). A field
  holding one is refused, never stripped: the dead letter names the field and the code point, and
  the source can be fixed. So a NUL inside an email never reaches a provider.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, Strict

MAX_TEXT_CHARS = 1_000
"""The longest text field: above what the platforms keep in such fields (Salesforce's Company
holds 255 characters, its LastName 80), and small enough that a validated change always fits in
one Kafka message."""

MAX_EPOCH_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z

_TEXT_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_ID_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _named(char: str) -> str:
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"{kind} (U+{ord(char):04X})"


def _clean_text(value: object) -> object:
    """Runs before pydantic's own checks, which refuse a lone surrogate less clearly."""
    found = _TEXT_FORBIDDEN.search(value) if isinstance(value, str) else None
    if found is not None:
        raise ValueError(f"holds {_named(found.group())}")
    return value


def _record_id(value: object) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"a record id is a string or an integer, not {_json_type(value)}")
    text = str(value)
    if not text.strip():
        raise ValueError("a record id cannot be empty or blank")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"a record id has at most {MAX_TEXT_CHARS} characters")
    found = _ID_FORBIDDEN.search(text)
    if found is not None:
        raise ValueError(f"a record id cannot hold {_named(found.group())}")
    return value


def _json_type(value: object) -> str:
    names = {bool: "a boolean", float: "a float", list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), BeforeValidator(_clean_text)]
"""A text field from the source (see the module docstring for what it may hold)."""

RecordId = Annotated[str | int, PlainValidator(_record_id)]
"""A record's id as the source gives it: a string or an integer."""

EpochMs = Annotated[int, Strict(), Field(ge=0, lt=MAX_EPOCH_MS)]
"""A source time in milliseconds since the epoch."""

Position = Annotated[int, Strict(), Field(ge=0, lt=2**64)]
"""A position in the source's log (an LSN, a binlog position or row, a sequence number)."""


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def _null_is_false(value: object) -> object:
    return False if value is None else value


Flag = Annotated[bool, BeforeValidator(_null_is_false)]
"""A yes/no column: NULL means false (in CDC events as in a backfill)."""


class ContactFields(BaseModel):
    """A contact's fields: the one list of them. ``schemas.contact.Contact`` (canonical) and
    :class:`ContactRow` (as captured) add the record id; the source mapping
    (``pipeline/mappings/source.yaml``) names the table's column for each."""

    email: Text | None = None
    phone: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    title: Text | None = None
    contact_type: Text | None = None
    subscribed: Flag = False
    do_not_sync: Flag = False


class ContactRow(ContactFields, _Input):
    """One row of the contacts table as the CDC tool captured it, its columns named by the contact's
    fields (``pipeline.stages.source_mapping`` renames them)."""

    id: RecordId


class DebeziumSource(_Input):
    """The ``source`` block: what orders a record's changes (see ``pipeline.stages.validate``).

    ``lsn`` (Postgres) orders them; else ``ts_ms``, with the connector's position in its log as
    tie-breaker within a millisecond: ``file``/``pos``/``row`` (MySQL, MariaDB binlog) or
    ``sequence`` (a JSON array of positions as strings, Debezium's generic field).
    """

    ts_ms: EpochMs
    lsn: Position | None = None
    sequence: Text | None = None
    file: Text | None = None
    pos: Position | None = None
    row: Position | None = None
    snapshot: Text | bool | None = None  # "true", "last", "incremental", ... or "false"; bool in old releases
    connector: Text | None = None
    table: Text | None = None


class DebeziumChange(_Input):
    """A Debezium change event payload (``op``: c create, u update, d delete, r snapshot read).

    Truncates (``t``) and logical decoding messages (``m``) are refused with their own reason before
    this model is used (``pipeline.stages.validate``)."""

    op: Literal["c", "u", "d", "r"]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    source: DebeziumSource
    ts_ms: int | None = None


class DebeziumEnvelope(_Input):
    """The same payload wrapped with its schema, as the JSON converter writes it by default."""

    schema_: dict[str, Any] | None = None
    payload: DebeziumChange

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class PlainChange(_Input):
    """The plain form: ``{"op": "upsert"|"delete", "id": ..., "ts": ms, "seq": n, "data": {...}}``."""

    op: Literal["upsert", "delete", "c", "u", "d", "r"]
    id: RecordId
    ts: EpochMs
    seq: Position = 0
    data: dict[str, Any] | None = None
