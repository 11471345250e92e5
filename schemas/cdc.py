"""What CDC producers put on ``contacts.cdc``: Debezium change events and a plain form.

Input models tolerate extra columns and fields (the source table may grow); our own messages do not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ContactRow(_Input):
    """One row of the contacts table as the CDC tool captured it."""

    id: str | int
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    contact_type: str | None = None
    subscribed: bool = False
    do_not_sync: bool = False


class DebeziumSource(_Input):
    """The ``source`` block: what orders a record's changes (see ``pipeline.stages.validate``).

    ``lsn`` (Postgres) orders them; else ``ts_ms``, with the connector's position in its log as
    tie-breaker within a millisecond: ``file``/``pos``/``row`` (MySQL, MariaDB binlog) or
    ``sequence`` (a JSON array of positions as strings, Debezium's generic field).
    """

    ts_ms: int
    lsn: int | None = None
    sequence: str | None = None
    file: str | None = None
    pos: int | None = None
    row: int | None = None
    snapshot: str | bool | None = None  # "true", "last", "incremental", ... or "false"; bool in old releases
    connector: str | None = None
    table: str | None = None


class DebeziumChange(_Input):
    """A Debezium change event payload (``op``: c create, u update, d delete, r snapshot read)."""

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
    id: str | int
    ts: int
    seq: int = 0
    data: dict[str, Any] | None = None
