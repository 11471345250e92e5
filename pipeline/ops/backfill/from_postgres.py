"""Contact rows from a PostgreSQL table (or view), read in key order a page at a time.

The columns the source mapping names are read (others are ignored; one the table lacks is a
ConfigError line each); its key column (the record id, unique) orders the pages (``WHERE id > last
ORDER BY id LIMIT n``),
so the table is never held in memory nor in one long transaction, and a backfill resumes after the
last key it sent. A NULL is a missing value (false for the flags); values of other types than text,
numbers and booleans (uuid, ...) are sent as text. Rows with a NULL id are not read. A row that is
not a contact stops the backfill with a ConfigError naming its id; the chunks before it are sent and
saved, so a rerun after fixing it resumes there.

The snapshot's version is the server's WAL position when the backfill begins (``pg_current_wal_lsn()``,
or the last replayed one on a standby), in Debezium's numeric form: every row read afterwards is at
least as new as that, and the changes CDC captures after it carry higher LSNs, so they win over the
snapshot. A change of a transaction still open at that moment may carry a lower LSN and lose to the
snapshot row if the snapshot reads the row first: begin a backfill when no long write is running.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from pipeline.errors import ConfigError
from pipeline.ops.backfill.publish import BackfillState, SourceRow, checked_row, source_block
from pipeline.stages.source_mapping import SourceMapping

PAGE = 1000
CONNECT_TIMEOUT_S = 10  # unless the DSN says otherwise
_COLUMNS = sql.SQL(
    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
)
_SNAPSHOT_POINT = sql.SQL("""
    SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)
           - '0/0'::pg_lsn AS lsn,
           (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ts_ms
""")


@contextmanager
def connect(dsn: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection to ``dsn``, or one ConfigError line saying why not."""
    try:
        options = conninfo_to_dict(dsn)
        options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        connection = psycopg.connect(make_conninfo("", **options), autocommit=True, row_factory=dict_row)
    except psycopg.Error as exc:
        raise ConfigError(f"cannot connect to Postgres: {one_line(exc)}") from None
    with connection:
        yield connection


def one_line(exc: psycopg.Error) -> str:
    """libpq's message without psycopg's prefix and libpq's hint lines."""
    first = str(exc).strip().splitlines()[0]
    return re.sub(r"\s+", " ", re.sub(r"^connection (failed|is bad): ", "", first))


def table_columns(connection: psycopg.Connection[dict[str, Any]], table: str) -> set[str]:
    """The columns of ``table`` (empty: no such table)."""
    name = sql.Identifier(*table.split(".", 1)).as_string(connection)
    try:
        return {row["attname"] for row in connection.execute(_COLUMNS, (name,)).fetchall()}
    except psycopg.Error as exc:
        raise ConfigError(f"table {table}: {one_line(exc)}") from None


def require_mapped_table(connection: psycopg.Connection[dict[str, Any]], table: str, mapping: SourceMapping) -> None:
    """ConfigError unless ``table`` exists with every column ``mapping`` names (one line per problem)."""
    found = table_columns(connection, table)
    if not found:
        raise ConfigError(f"no table {table} in database {connection.info.dbname}")
    problems = mapping.problems_with_table(table, found)
    if problems:
        raise ConfigError("\n".join(f"source mapping: {problem}" for problem in problems))


class TableRows:
    """The rows of one table, as a backfill's row source; its progress is kept in the current directory."""

    def __init__(self, connection: psycopg.Connection[dict[str, Any]], table: str, mapping: SourceMapping) -> None:
        self._connection = connection
        self._mapping = mapping
        self._key = mapping.key_column
        self._name = table
        self._table = sql.Identifier(*table.split(".", 1))
        self.label = f"table {table}"
        self._database = f"{connection.info.host}:{connection.info.port}/{connection.info.dbname}"
        self.state_file = Path(f"{connection.info.dbname}.{table}.backfill.json")
        require_mapped_table(connection, table, mapping)
        self._columns = sql.SQL(", ").join(sql.Identifier(column) for column in mapping.column_of().values())

    def origin(self) -> dict[str, Any]:
        return {"database": self._database, "table": self._name}

    def snapshot_source(self, *, as_of_ms: int | None, lsn: int | None) -> dict[str, Any]:
        """At ``lsn``, by default the server's WAL position now, and ``as_of_ms``, by default its clock now."""
        server = self._query(_SNAPSHOT_POINT)[0]
        ts_ms = as_of_ms if as_of_ms is not None else int(server["ts_ms"])
        return source_block(self._connection.info.dbname, self._name, ts_ms,
                            lsn if lsn is not None else int(server["lsn"]))

    def remaining(self, state: BackfillState) -> int:
        query = sql.SQL("SELECT count(*) AS n FROM {} {}").format(self._table, self._after(state.last_key))
        return int(self._query(query, self._params(state.last_key))[0]["n"])

    def rows(self, state: BackfillState) -> Iterator[SourceRow]:
        last = state.last_key
        while page := self._page(last):
            for document in page:
                yield checked_row(document, f"{self.label}, {self._key} {document[self._key]}", self._mapping)
            last = page[-1][self._key]

    def _page(self, last: Any) -> list[dict[str, Any]]:
        query = sql.SQL("SELECT {} FROM {} {} ORDER BY {} LIMIT {}").format(
            self._columns, self._table, self._after(last), sql.Identifier(self._key), sql.Literal(PAGE)
        )
        return [
            {column: _plain(value) for column, value in row.items() if value is not None}
            for row in self._query(query, self._params(last))
        ]

    def _after(self, last: Any) -> sql.Composable:
        condition = "WHERE {} IS NOT NULL" if last is None else "WHERE {} > %s"
        return sql.SQL(condition).format(sql.Identifier(self._key))

    @staticmethod
    def _params(last: Any) -> tuple[Any, ...]:
        return () if last is None else (last,)

    def _query(self, query: sql.SQL | sql.Composed, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """The rows ``query`` returns; a database error is one ConfigError line."""
        try:
            return self._connection.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise ConfigError(f"{self.label}: {one_line(exc)}") from None


def _plain(value: Any) -> Any:
    """A value as the file form would have it: text, a number or a boolean."""
    return value if isinstance(value, str | int | float | bool) else str(value)
