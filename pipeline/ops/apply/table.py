"""Writing platform changes into the user's contacts table, with each field's applied clock.

The clock lives in a table of its own beside the contacts table (``contactsync_applied`` by
default: table, record id, field, time), created when missing and written in the same transaction
as the row, so the row and the times it was written with can never disagree. The contacts table
itself needs no extra column. ``pipeline.stages.apply`` decides what each change writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from psycopg import sql

from pipeline.errors import ConfigError
from pipeline.ops.backfill.from_postgres import one_line, require_mapped_table
from pipeline.stages.apply import RowWrite, held_values, plan_write
from pipeline.stages.source_mapping import SourceMapping
from schemas.inbound import FieldValue, InboundResolved

Outcome = Literal["updated", "inserted", "deleted", "older", "changed_in_table", "not_in_table", "unmapped"]
RECORD_FAULTS = (psycopg.DataError, psycopg.IntegrityError)  # the change's values, not the database

_CLOCK = """CREATE TABLE IF NOT EXISTS {} (
    table_name text NOT NULL, record_id text NOT NULL, field text NOT NULL, at_ms bigint NOT NULL,
    PRIMARY KEY (table_name, record_id, field))"""


class ContactsTable:
    """One contacts table (``schema.table``) under a source mapping, and its applied clock."""

    def __init__(
        self, connection: psycopg.Connection[dict[str, Any]], table: str, mapping: SourceMapping, clock_table: str,
        phone_region: str,
    ) -> None:
        self._connection = connection
        self._name = table
        self._mapping = mapping
        self._phone_region = phone_region
        require_mapped_table(connection, table, mapping)
        self._table = sql.Identifier(*table.split(".", 1))
        schema = table.split(".", 1)[0] if "." in table else None
        self._clock = sql.Identifier(*([schema] if schema else []), clock_table)
        self._key = sql.Identifier(mapping.key_column)
        self._columns = sql.SQL(", ").join(sql.Identifier(column) for column in mapping.column_of().values())
        try:
            connection.execute(sql.SQL(_CLOCK).format(self._clock))
        except psycopg.Error as exc:
            raise ConfigError(f"cannot create the applied clock table {clock_table}: {one_line(exc)} "
                              "(grant CREATE on the schema, or create it as docs/webhooks.md shows)") from None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around a batch of changes: committed when the block ends without an error."""
        with self._connection.transaction():
            yield

    def apply(self, change: InboundResolved) -> tuple[Outcome, RowWrite]:
        """Write one change (inside :meth:`batch`); a value the table refuses raises one of
        ``RECORD_FAULTS`` with nothing of the change written."""
        with self._connection.transaction():  # a savepoint: a refused change leaves the batch intact
            write = plan_write(change, self._mapping, self._applied(change.record_id), self._held(change.record_id))
            return self._write(change.record_id, write), write

    def _write(self, record_id: str, write: RowWrite) -> Outcome:
        if write.action == "nothing":
            return "changed_in_table" if write.changed_in_table else "older" if write.older else "unmapped"
        if write.action == "delete":
            self._execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(self._table, self._key), (record_id,))
            self._stamp(record_id, write.times)
            return "deleted"
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in write.columns
        )
        update = sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(self._table, assignments, self._key)
        outcome: Outcome = "updated"
        if self._execute(update, (*write.columns.values(), record_id)) == 0:
            if not write.insert:
                return "not_in_table"
            names = sql.SQL(", ").join(sql.Identifier(column) for column in (self._mapping.key_column, *write.columns))
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                self._table, names, sql.SQL(", ").join(sql.Placeholder() * (len(write.columns) + 1))
            )
            self._execute(insert, (record_id, *write.columns.values()))
            outcome = "inserted"
        self._stamp(record_id, write.times)
        return outcome

    def _applied(self, record_id: str) -> dict[str, int]:
        query = sql.SQL("SELECT field, at_ms FROM {} WHERE table_name = %s AND record_id = %s FOR UPDATE")
        rows = self._connection.execute(query.format(self._clock), (self._name, record_id)).fetchall()
        return {row["field"]: int(row["at_ms"]) for row in rows}

    def _held(self, record_id: str) -> dict[str, FieldValue] | None:
        """The row's values now, locked until the batch commits (None: no such row)."""
        query = sql.SQL("SELECT {} FROM {} WHERE {} = %s FOR UPDATE").format(self._columns, self._table, self._key)
        row = self._connection.execute(query, (record_id,)).fetchone()
        return None if row is None else held_values(row, self._mapping, self._phone_region)

    def _stamp(self, record_id: str, times: dict[str, int]) -> None:
        statement = sql.SQL(
            "INSERT INTO {} (table_name, record_id, field, at_ms) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (table_name, record_id, field) DO UPDATE SET at_ms = excluded.at_ms"
        ).format(self._clock)
        with self._connection.cursor() as cursor:
            cursor.executemany(statement, [(self._name, record_id, name, at) for name, at in times.items()])

    def _execute(self, statement: sql.Composed, params: tuple[Any, ...]) -> int:
        return self._connection.execute(statement, params).rowcount
