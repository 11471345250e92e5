"""`contactsync apply` on the real broker and a real PostgreSQL server: changes on contacts.changes.inbound
written to a table through the source mapping, each once, never an older one over a newer one; what the
table refuses dead-lettered with the reason; a bad DSN, table or mapped column one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.dev.cdc_generator import GeneratedEvent, Kind
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.local_stack import read_topic
from pipeline.kafka.topics import TopicCatalog
from schemas.dead_letter import DeadLetter
from schemas.headers import from_headers
from schemas.inbound import FieldDecision, InboundResolved
from tests.cli_runner import cli_env, run_cli
from tests.postgres_harness import fresh_table_name

pytestmark = pytest.mark.kafka

MAPPING = """\
columns: {id: person_no, email: mail, first_name: given, subscribed: opted_in, contact_type: kind,
          phone: null, last_name: null, company: null, title: null, do_not_sync: null}
contact_types: {L: lead}
"""


def _env(bootstrap: str, catalog: TopicCatalog, mapping_file: Path) -> dict[str, str]:
    return cli_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=catalog.prefix,
                   CONTACTSYNC_SOURCE__MAPPING=str(mapping_file))


def _sql(dsn: str, statement: str, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as connection:
        cursor = connection.execute(sql.SQL(statement).format(sql.Identifier(table)))
        return cursor.fetchall() if cursor.description else []


def _change(record_id: str, at_ms: int, *, op: str = "upsert", new_record: bool = False, **fields: Any) -> GeneratedEvent:
    decisions = [FieldDecision(field=name, value=value, platform_at_ms=at_ms, ours_at_ms=None, ours_by=None,
                               winner="platform") for name, value in fields.items()]
    change = InboundResolved(record_id=record_id, provider="hubspot", platform_id="9", new_record=new_record,
                             op=op, occurred_at_ms=at_ms, version=1, fields=fields, decisions=decisions)  # type: ignore[arg-type]
    return GeneratedEvent(record_id.encode(), change.model_dump_json().encode(), Kind.UPDATE, record_id, None)


@pytest.fixture
def table(postgres_dsn: str) -> str:
    """A contacts table whose columns are not named like the fields, with a unique email."""
    name = fresh_table_name()
    _sql(postgres_dsn, "CREATE TABLE {} (person_no text PRIMARY KEY, mail text UNIQUE, given text, kind text,"
         " opted_in boolean, note text)", name)
    _sql(postgres_dsn, "INSERT INTO {} VALUES ('r1', 'r1@example.com', 'Ann', 'L', true, 'kept'),"
         " ('r2', 'r2@example.com', 'Bo', 'L', true, NULL), ('r4', 'r4@example.com', 'Di', NULL, NULL, NULL),"
         " ('r5', 'r5@example.com', 'Ed', NULL, NULL, NULL)", name)
    return name


async def test_changes_are_applied_once_never_older_over_newer_and_refusals_are_dead_lettered(
    kafka_bootstrap: str, catalog: TopicCatalog, postgres_dsn: str, table: str, tmp_path: Path
) -> None:
    """Only the carried fields are written, in the mapped columns; an older change after a newer one writes
    nothing; a contact created at a platform is inserted; a delete deletes; a change the table refuses (a
    duplicate email) and a message that is not a change are dead-lettered with the reason while the rest of
    the batch is applied; running again applies nothing."""
    (mapping_file := tmp_path / "source.yaml").write_text(MAPPING)
    env = _env(kafka_bootstrap, catalog, mapping_file)
    await publish([
        _change("r1", 2_000, email="r1.new@example.com"),
        _change("r1", 1_000, email="r1.old@example.com"),
        _change("r2", 2_000, subscribed=False, contact_type="lead"),
        _change("hubspot-9", 2_000, new_record=True, email="new@example.com", first_name="Nia"),
        _change("r3", 2_000, first_name="Nobody"),
        _change("r4", 2_000, email="r2@example.com"),
        GeneratedEvent(b"r6", b"{not a change", Kind.INVALID_JSON, "r6", None),
        _change("r5", 2_000, op="delete"),
    ], kafka_bootstrap, catalog.changes_inbound)

    done = run_cli(env, "apply", "--to-postgres", postgres_dsn, "--table", table, "--until-idle")
    again = run_cli(env, "apply", "--to-postgres", postgres_dsn, "--table", table, "--until-idle")

    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"applied 8 changes from {catalog.changes_inbound} to {table}: 1 inserted, 2 updated,"
                           " 1 deleted, 1 older, 0 changed in table, 1 not in table, 0 unmapped, 2 dead lettered\n")
    rows = {row["person_no"]: row for row in _sql(postgres_dsn, "SELECT * FROM {} ORDER BY person_no", table)}
    assert set(rows) == {"hubspot-9", "r1", "r2", "r4"}
    assert rows["r1"] == {"person_no": "r1", "mail": "r1.new@example.com", "given": "Ann", "kind": "L",
                          "opted_in": True, "note": "kept"}
    assert (rows["r2"]["opted_in"], rows["r2"]["kind"], rows["r2"]["mail"]) == (False, "L", "r2@example.com")
    assert (rows["hubspot-9"]["mail"], rows["hubspot-9"]["given"]) == ("new@example.com", "Nia")
    assert rows["r4"]["mail"] == "r4@example.com"
    letters = [(m.key, from_headers(DeadLetter, m.headers)) for m in await read_topic(kafka_bootstrap, catalog.dlq)]
    assert sorted((key, letter.stage, letter.error_class) for key, letter in letters) == [
        (b"r4", "apply", "UniqueViolation"), (b"r6", "apply", "InvalidEventError")]
    assert all(letter.original_topic == catalog.changes_inbound for _, letter in letters)
    assert 'duplicate key value violates unique constraint' in dict(letters)[b"r4"].error_message
    assert again.returncode == 0 and again.stdout.startswith("applied 0 changes"), again


@pytest.mark.parametrize(("dsn_of", "table_of", "mapping", "says"), [
    (lambda dsn: "host=/nonexistent port=1 dbname=app", lambda table: table, MAPPING,
     'cannot connect to Postgres: connection to server on socket "/nonexistent/.s.PGSQL.1" failed: '
     "No such file or directory"),
    (lambda dsn: dsn, lambda table: "no_such_table", MAPPING, "no table no_such_table in database postgres"),
    (lambda dsn: dsn, lambda table: table, MAPPING.replace("given", "givn"),
     "source mapping: first_name: table {table} has no column 'givn' (did you mean 'given'?) (map it to another"
     " column, or to null if the table has none)"),
], ids=["unreachable server", "missing table", "mapped column missing"])
async def test_a_bad_dsn_table_or_mapped_column_is_one_line(
    kafka_bootstrap: str, catalog: TopicCatalog, postgres_dsn: str, table: str, tmp_path: Path,
    dsn_of: Any, table_of: Any, mapping: str, says: str,
) -> None:
    """Each stops the applier before it reads anything, with one line saying what is wrong, exit code 2."""
    (mapping_file := tmp_path / "source.yaml").write_text(mapping)
    done = run_cli(_env(kafka_bootstrap, catalog, mapping_file), "apply", "--to-postgres", dsn_of(postgres_dsn),
                   "--table", table_of(table), "--until-idle")
    assert (done.returncode, done.stderr) == (2, f"contactsync: {says.format(table=table)}\n")
