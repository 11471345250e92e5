"""A contacts table whose columns are not named like the contact's fields, and a realistic stream of
SQL changes to it: what the Postgres demo, the CDC tests and the CDC benchmark write.

Each statement changes one row in its own transaction (autocommit), as an application would. Every
row keeps an email of its own (``p<id>.<n>@example.com``): no two rows ever hold the same address,
so no platform where the email is unique refuses one for another's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

TABLE = "crm_people"
COLUMNS = ("person_no bigint PRIMARY KEY, mail text, given text, family text, org text, job text, kind text,"
           " opted_in boolean, blocked boolean, created timestamptz DEFAULT now()")
MAPPING = """\
columns: {id: person_no, email: mail, first_name: given, last_name: family, company: org, title: job,
          phone: null, contact_type: kind, subscribed: opted_in, do_not_sync: blocked}
contact_types: {L: lead, C: customer, P: partner}
"""
_GIVEN = ("Ada", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lea")
_FAMILY = ("Moreau", "Okafor", "Silva", "Tanaka", "Novak", "Berg", None)
_ORG = ("Acme", "Globex", "Initech", "Umbrella", None)
_JOB = ("CTO", "Buyer", "Engineer", "Analyst", None)
_KINDS = ("L", "L", "C", "C", "C", "P", None)  # partners and typeless rows are unrouted, on purpose
_FLAGS = (True, False, None)  # NULL in a flag column means false


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[Any, ...] = ()


def create_table(dsn: str) -> None:
    """(Re)create the table; ``job`` is stored out of line when large (TOASTed, uncompressed)."""
    execute(dsn, [Statement(f"DROP TABLE IF EXISTS {TABLE}"), Statement(f"CREATE TABLE {TABLE} ({COLUMNS})"),
                  Statement(f"ALTER TABLE {TABLE} ALTER COLUMN job SET STORAGE EXTERNAL")])


def execute(dsn: str, statements: Iterable[Statement], rate: float | None = None) -> int:
    """Run each statement in its own transaction, ``rate`` a second at most; how many ran."""
    started, count = time.monotonic(), 0
    with psycopg.connect(dsn, autocommit=True) as connection:
        for count, statement in enumerate(statements, 1):
            if rate:
                time.sleep(max(0.0, started + (count - 1) / rate - time.monotonic()))
            connection.execute(statement.sql, statement.params)
    return count


class ChangeMix:
    """Inserts, updates and deletes of the table's rows, about 35/50/15, from a seed."""

    def __init__(self, seed: int = 7, first_id: int = 1) -> None:
        self._random = random.Random(seed)
        self._next_id = first_id
        self._live: list[int] = []
        self._writes = 0

    def inserts(self, count: int) -> Iterator[Statement]:
        for _ in range(count):
            yield self._insert()

    def changes(self, count: int) -> Iterator[Statement]:
        for _ in range(count):
            roll = self._random.random()
            if len(self._live) < 5 or roll < 0.35:
                yield self._insert()
            elif roll < 0.85:
                yield self._update()
            else:
                yield self._delete()

    def _insert(self) -> Statement:
        person, pick = self._next_id, self._random.choice
        self._next_id += 1
        self._live.append(person)
        return Statement(
            f"INSERT INTO {TABLE} (person_no, mail, given, family, org, job, kind, opted_in, blocked)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (person, self._email(person), pick(_GIVEN), pick(_FAMILY), pick(_ORG), pick(_JOB), pick(_KINDS),
             pick(_FLAGS), self._random.random() < 0.05 or None),
        )

    def _update(self) -> Statement:
        person, pick = self._random.choice(self._live), self._random.choice
        column, value = pick([("mail", self._email(person)), ("given", pick(_GIVEN)), ("org", pick(_ORG)),
                              ("job", pick(_JOB)), ("kind", pick(_KINDS)), ("opted_in", pick(_FLAGS))])
        return Statement(f"UPDATE {TABLE} SET {column} = %s, family = %s WHERE person_no = %s",
                         (value, pick(_FAMILY), person))

    def _delete(self) -> Statement:
        person = self._live.pop(self._random.randrange(len(self._live)))
        return Statement(f"DELETE FROM {TABLE} WHERE person_no = %s", (person,))

    def _email(self, person: int) -> str:
        self._writes += 1
        return f"p{person}.{self._writes}@example.com"
