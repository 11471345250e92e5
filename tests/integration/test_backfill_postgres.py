"""`contactsync backfill --from-postgres` on the real broker and a real PostgreSQL server: a table's
rows become CDC snapshot events at the server's WAL position, an interrupted backfill resumes with
that same position and ends with every row sent, and a bad DSN or table is one line."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pipeline.dev.local_stack import read_topic
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.backfill.publish import BackfillState
from pipeline.stages.source_mapping import load_source_mapping
from pipeline.stages.validate import decode_change
from tests.cli_runner import CONTACTSYNC, cli_env, run_cli
from tests.postgres_harness import fresh_table_name

pytestmark = pytest.mark.kafka

_RATE = "400"  # rows per second: chunks of 40, so a backfill of 3,000 rows takes about 8 s
_CHUNK = 40
_WAIT_S = 60


def _env(bootstrap: str, catalog: TopicCatalog) -> dict[str, str]:
    return cli_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=catalog.prefix)


def _sql(dsn: str, statement: str, table: str) -> list[tuple[object, ...]]:
    """Run ``statement`` with ``{}`` standing for ``table``; its rows, if it returns any."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(sql.SQL(statement).format(sql.Identifier(table)))
        return cursor.fetchall() if cursor.description else []


def _wal_lsn(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


async def test_table_rows_become_snapshot_events_at_the_wal_position(
    kafka_bootstrap: str, catalog: TopicCatalog, postgres_dsn: str, contacts_table: str, tmp_path: Path
) -> None:
    """Each row is one `r` event keyed by its id that decodes to an upsert of that row's contact columns
    (NULL flags false, other columns ignored), versioned by the WAL position when the backfill began."""
    _sql(postgres_dsn, "INSERT INTO {} (id, email, phone, first_name, last_name, company, contact_type, subscribed,"
         " do_not_sync) VALUES (1, 'a@example.com', '+14155550100', 'Ada', 'Lovelace', 'Acme', 'customer', true,"
         " false), (2, NULL, NULL, 'Bo', NULL, NULL, NULL, NULL, true), (10, 'c@example.com', NULL, NULL, NULL,"
         " NULL, NULL, NULL, NULL)", contacts_table)
    before = _wal_lsn(postgres_dsn)

    done = run_cli(_env(kafka_bootstrap, catalog), "backfill", "--from-postgres", postgres_dsn,
                   "--table", contacts_table, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"sent rows 1 to 3 of table {contacts_table} to {catalog.cdc} as snapshot events" in done.stdout
    assert (tmp_path / f"postgres.{contacts_table}.backfill.json").exists()
    messages = sorted(await read_topic(kafka_bootstrap, catalog.cdc), key=lambda m: int(m.key))
    assert [m.key for m in messages] == [b"1", b"2", b"10"]
    assert all(json.loads(m.value)["op"] == "r" for m in messages)
    changes = [decode_change(m.value, captured_at_ms=0, offset=m.offset) for m in messages]
    assert all(change is not None and change.op == "upsert" for change in changes)
    versions = {change.version for change in changes if change}
    assert len(versions) == 1 and before <= versions.pop() <= _wal_lsn(postgres_dsn)
    ada, bo, third = (change.contact for change in changes if change)
    assert (ada.email, ada.first_name, ada.last_name, ada.company, ada.subscribed, ada.do_not_sync) == (
        "a@example.com", "Ada", "Lovelace", "Acme", True, False)
    assert (bo.email, bo.first_name, bo.subscribed, bo.do_not_sync) == (None, "Bo", False, True)
    assert (third.email, third.subscribed) == ("c@example.com", False)


async def test_a_table_with_its_own_column_names_is_read_through_the_source_mapping(
    kafka_bootstrap: str, catalog: TopicCatalog, postgres_dsn: str, tmp_path: Path
) -> None:
    """With a mapping of `person_no`, `mail`, `kind` (P stands for prospect) and `opted_in`, the snapshot
    events carry the table's columns and the validate stage reads them as the contact's fields, through
    the same mapping; a mapping naming a column the table lacks is one line per column, nothing sent."""
    table = fresh_table_name()
    _sql(postgres_dsn, "CREATE TABLE {} (person_no int PRIMARY KEY, mail text, kind text, opted_in boolean)", table)
    _sql(postgres_dsn, "INSERT INTO {} VALUES (5, 'e@example.com', 'P', NULL), (6, NULL, 'partner', true)", table)
    mapping_file = tmp_path / "source.yaml"
    mapping_file.write_text(
        "columns: {id: person_no, email: mail, contact_type: kind, subscribed: opted_in, do_not_sync: null,\n"
        "          phone: null, first_name: null, last_name: null, company: null, title: null}\n"
        "contact_types: {P: prospect}\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("columns: {id: person_no, email: email_address, phone: cell}\n")
    env = _env(kafka_bootstrap, catalog)

    refused = run_cli({**env, "CONTACTSYNC_SOURCE__MAPPING": str(broken)}, "backfill", "--from-postgres",
                      postgres_dsn, "--table", table, cwd=tmp_path)
    done = run_cli({**env, "CONTACTSYNC_SOURCE__MAPPING": str(mapping_file)}, "backfill", "--from-postgres",
                   postgres_dsn, "--table", table, cwd=tmp_path)

    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 9, refused.stderr  # 7 by their names
    assert f"email: table {table} has no column 'email_address'" in refused.stderr
    assert done.returncode == 0, done.stderr
    messages = sorted(await read_topic(kafka_bootstrap, catalog.cdc), key=lambda m: int(m.key))
    assert json.loads(messages[0].value)["after"] == {"person_no": 5, "mail": "e@example.com", "kind": "P"}
    mapping = load_source_mapping(mapping_file)
    five, six = (decode_change(m.value, captured_at_ms=0, offset=m.offset, mapping=mapping) for m in messages)
    assert five is not None and five.contact is not None and six is not None and six.contact is not None
    assert (five.record_id, five.contact.email, five.contact.contact_type, five.contact.subscribed) == (
        "5", "e@example.com", "prospect", False)
    assert (six.contact.contact_type, six.contact.subscribed) == ("partner", True)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([CONTACTSYNC, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_progress(state_file: Path, rows: int, run: subprocess.Popen[str]) -> BackfillState:
    """The saved progress once it reaches ``rows``, while ``run`` is still going."""
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        if state_file.exists():
            state = BackfillState.model_validate_json(state_file.read_text())
            if state.rows_done >= rows:
                return state
        time.sleep(0.05)
    raise AssertionError(f"no progress to {rows} rows in {_WAIT_S}s")


async def test_an_interrupted_backfill_resumes_and_sends_every_row(
    kafka_bootstrap: str, catalog: TopicCatalog, postgres_dsn: str, contacts_table: str, tmp_path: Path
) -> None:
    """SIGINT stops a backfill after an acknowledged, saved chunk, so its rows are sent exactly once;
    after a SIGKILL, the resumed run sends at most the one chunk in flight again; every row (one added
    meanwhile too) ends up sent, each copy the same change, all at the WAL position of the first run."""
    _sql(postgres_dsn, "INSERT INTO {} (id, email) SELECT n, 'p' || n || '@example.com' FROM generate_series(1, 3000) n",
         contacts_table)
    env, state_file = _env(kafka_bootstrap, catalog), tmp_path / "progress.json"
    backfill = ("backfill", "--from-postgres", postgres_dsn, "--table", contacts_table, "--state", str(state_file))

    interrupted = _start(env, *backfill, "--rate", _RATE)
    _wait_for_progress(state_file, 400, interrupted)
    interrupted.send_signal(signal.SIGINT)
    out, err = interrupted.communicate(timeout=_WAIT_S)
    stopped_at = BackfillState.model_validate_json(state_file.read_text())
    first_run = await read_topic(kafka_bootstrap, catalog.cdc)

    _sql(postgres_dsn, "INSERT INTO {} (id, email) VALUES (3001, 'late@example.com')", contacts_table)
    killed = _start(env, *backfill, "--rate", _RATE)
    _wait_for_progress(state_file, stopped_at.rows_done + 400, killed)
    killed.kill()
    killed.wait(timeout=_WAIT_S)
    killed_at = BackfillState.model_validate_json(state_file.read_text())
    finished = run_cli(env, *backfill)

    assert interrupted.returncode == 130, err
    assert f"stopped after row {stopped_at.rows_done} of 3000" in out
    assert sorted(int(m.key) for m in first_run) == list(range(1, stopped_at.rows_done + 1))
    assert finished.returncode == 0, finished.stderr
    assert f"resuming after {killed_at.rows_done} of 3001 rows" in finished.stdout
    messages = await read_topic(kafka_bootstrap, catalog.cdc)
    copies = Counter(int(m.key) for m in messages)
    assert set(copies) == set(range(1, 3002))
    resent = {key for key, count in copies.items() if count > 1}
    assert max(copies.values()) <= 2 and resent <= set(range(killed_at.rows_done + 1, killed_at.rows_done + _CHUNK + 1))
    changes = [decode_change(m.value, captured_at_ms=0, offset=m.offset) for m in messages]
    assert len({change.model_dump_json() for change in changes if change}) == 3001  # copies are the same change
    lsn = stopped_at.source["lsn"]
    assert {change.version for change in changes if change} == {lsn} and lsn < _wal_lsn(postgres_dsn)


@pytest.mark.parametrize(("dsn_of", "table", "says"), [
    (lambda dsn: "host=/nonexistent port=1 dbname=app", "contacts",
     'cannot connect to Postgres: connection to server on socket "/nonexistent/.s.PGSQL.1" failed: '
     "No such file or directory"),
    (lambda dsn: "dbname", "contacts",
     'cannot connect to Postgres: missing "=" after "dbname" in connection info string'),
    (lambda dsn: dsn, "no_such_table", "no table no_such_table in database postgres"),
], ids=["unreachable server", "malformed DSN", "missing table"])
async def test_a_bad_dsn_or_table_is_one_line_and_nothing_is_sent(
    kafka_bootstrap: str, catalog: TopicCatalog, postgres_dsn: str, dsn_of, table: str, says: str, tmp_path: Path
) -> None:
    """An unreachable server, a malformed DSN or a missing table stops the backfill with one line saying which."""
    done = run_cli(_env(kafka_bootstrap, catalog), "backfill", "--from-postgres", dsn_of(postgres_dsn),
                   "--table", table, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (2, f"contactsync: {says}\n")
    assert await read_topic(kafka_bootstrap, catalog.cdc) == []
