"""Fresh contacts tables in the tests' throwaway PostgreSQL server (``pipeline.dev.local_postgres``)."""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql


def fresh_table_name() -> str:
    """A table name no other test has used."""
    return f"contacts_{uuid.uuid4().hex[:8]}"


def create_contacts_table(dsn: str, table: str) -> None:
    """An empty contacts table as a CDC source would have it: the contact columns and one more."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL(
            "CREATE TABLE {} (id bigint PRIMARY KEY, email text, phone text, first_name text, last_name text,"
            " company text, title text, contact_type text, subscribed boolean, do_not_sync boolean,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        ).format(sql.Identifier(table)))
