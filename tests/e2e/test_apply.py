"""Closing the loop: changes made at the platforms reach a real Postgres contacts table through
`contactsync apply` (its own consumer group, the source mapping) and the other platforms; the later
change wins everywhere.

Debezium is not run here (tests/e2e/test_cdc_source.py runs it): a change made in the table is fed to
the pipeline as the CDC event Debezium would write for it, the row as the table holds it after the
change, in the plain form on contacts.cdc, read through the same source mapping.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.dev.cdc_generator import GeneratedEvent, Kind
from tests.cli_runner import CONTACTSYNC, run_cli
from tests.e2e.conftest import Pipeline
from tests.e2e.test_webhooks import echoes_judged, eventually, sim_edit, sim_record, start_with_webhooks
from tests.postgres_harness import fresh_table_name

pytestmark = pytest.mark.kafka

MAPPING = """\
columns: {id: person_no, email: mail, phone: tel, first_name: given, last_name: family, company: org, title: job,
          contact_type: kind, subscribed: opted_in, do_not_sync: blocked}
contact_types: {C: customer, L: lead}
"""


@dataclass
class ContactsDb:
    """The user's contacts table (columns not named like the fields) and its source mapping."""

    dsn: str
    table: str
    mapping_file: Path

    @property
    def env(self) -> dict[str, str]:
        return {"CONTACTSYNC_SOURCE__MAPPING": str(self.mapping_file)}

    def sql(self, statement: str, *params: Any) -> None:
        """Run ``statement``, ``{}`` standing for the table."""
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(sql.SQL(statement).format(sql.Identifier(self.table)), params)

    def row(self, record_id: str) -> dict[str, Any] | None:
        with psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row) as connection:
            query = sql.SQL("SELECT * FROM {} WHERE person_no = %s").format(sql.Identifier(self.table))
            return connection.execute(query, (record_id,)).fetchone()

    async def capture(self, harness: Pipeline, *record_ids: str) -> None:
        """Publish each row as it is now, as the CDC event of a change committed now."""
        ts = int(time.time() * 1000)
        events = []
        for record_id in record_ids:
            row = self.row(record_id)
            assert row is not None, record_id
            value = json.dumps({"op": "upsert", "id": record_id, "ts": ts, "seq": 1, "data": row}).encode()
            events.append(GeneratedEvent(record_id.encode(), value, Kind.UPDATE, record_id, ts * 1000 + 1))
        await harness.publish(events)


@pytest.fixture
def contacts_db(postgres_dsn: str, tmp_path: Path) -> ContactsDb:
    """A fresh contacts table in the session's Postgres, and its mapping file."""
    mapping_file = tmp_path / "source.yaml"
    mapping_file.write_text(MAPPING)
    db = ContactsDb(postgres_dsn, fresh_table_name(), mapping_file)
    db.sql("CREATE TABLE {} (person_no text PRIMARY KEY, mail text, tel text, given text, family text, org text,"
           " job text, kind text, opted_in boolean, blocked boolean)")
    return db


def applier_args(db: ContactsDb, *more: str) -> list[str]:
    return ["apply", "--to-postgres", db.dsn, "--table", db.table, *more]


@pytest.fixture
def applier(pipeline: tuple[Pipeline, AsyncExitStack], contacts_db: ContactsDb) -> Iterator[Any]:
    """Starts `contactsync apply` in the background (running until stopped) once called; stopped with
    SIGTERM after the test if it is still running."""
    harness = pipeline[0]
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        env = {**harness.cli_env(), **contacts_db.env}
        process = subprocess.Popen([CONTACTSYNC, *applier_args(contacts_db)], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


async def table_holds(db: ContactsDb, record_id: str, **columns: Any) -> bool:
    row = db.row(record_id)
    return row is not None and all(row[name] == value for name, value in columns.items())


async def test_platform_edits_reach_the_table_and_an_unsubscribe_survives_a_later_name_change(
    pipeline: tuple[Pipeline, AsyncExitStack], contacts_db: ContactsDb, applier: Any
) -> None:
    """An email edited at HubSpot reaches the table (in its mapped column) and Mailchimp; a Mailchimp
    unsubscribe reaches the table, and a later name change made in the table leaves the person
    unsubscribed in the table and at Mailchimp; SIGTERM stops the applier cleanly, and applying the whole
    topic again (a new group) changes nothing."""
    harness, exits = pipeline
    db = contacts_db
    db.sql("INSERT INTO {} (person_no, mail, given, kind, opted_in) VALUES"
           " ('ap-1', 'ap-1@example.com', 'Ann', 'C', true), ('ap-2', 'ap-2@example.com', 'Ann', 'C', true)")
    base = await start_with_webhooks(harness, exits, env=db.env)
    running = applier()
    await db.capture(harness, "ap-1", "ap-2")

    async def everywhere() -> bool:
        held = await harness.held()
        return all(r in held["hubspot"] and r in held["mailchimp"] for r in ("ap-1", "ap-2"))

    assert await eventually(everywhere), harness.logs()
    assert await eventually(lambda: echoes_judged(harness, base)), harness.logs()  # the first writes' echoes, dropped

    started = time.monotonic()
    await sim_edit(harness, "hubspot", "ap-1", {"email": "new-ap-1@example.com"})
    assert await eventually(lambda: table_holds(db, "ap-1", mail="new-ap-1@example.com", given="Ann")), db.row("ap-1")
    print(f"edit at HubSpot to the table: {time.monotonic() - started:.2f} s")

    async def email_at_mailchimp() -> bool:
        member = await sim_record(harness, "mailchimp", "ap-1")
        return member is not None and member["fields"]["email_address"] == "new-ap-1@example.com"

    assert await eventually(email_at_mailchimp), harness.logs()

    await sim_edit(harness, "mailchimp", "ap-2", {"status": "unsubscribed"})
    assert await eventually(lambda: table_holds(db, "ap-2", opted_in=False)), db.row("ap-2")
    db.sql("UPDATE {} SET given = 'Annabel' WHERE person_no = 'ap-2'")  # a later change from our side
    await db.capture(harness, "ap-2")

    async def renamed_at_mailchimp() -> dict[str, Any] | None:
        member = await sim_record(harness, "mailchimp", "ap-2")
        return member if member and member["fields"].get("FNAME") == "Annabel" else None

    member = await eventually(renamed_at_mailchimp)
    assert member is not None and member["fields"]["status"] == "unsubscribed", member
    await asyncio.sleep(5)  # whatever would still come back has come back
    assert await table_holds(db, "ap-2", opted_in=False, given="Annabel", mail="ap-2@example.com"), db.row("ap-2")
    assert (await sim_record(harness, "mailchimp", "ap-2") or {})["fields"]["status"] == "unsubscribed"

    running.send_signal(signal.SIGTERM)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    assert "applied 2 changes" in out and "2 updated" in out and "0 dead lettered" in out, out
    rows = {record_id: db.row(record_id) for record_id in ("ap-1", "ap-2")}
    again = run_cli({**harness.cli_env(), **db.env}, *applier_args(db, "--until-idle", "--group", "replay"))
    assert again.returncode == 0 and "applied 2 changes" in again.stdout and "2 older" in again.stdout, again
    assert {record_id: db.row(record_id) for record_id in rows} == rows


async def test_a_phone_edited_at_salesforce_while_the_table_changes_it_ends_with_the_later_one_everywhere(
    pipeline: tuple[Pipeline, AsyncExitStack], contacts_db: ContactsDb, applier: Any
) -> None:
    """A phone edited at Salesforce, then changed in the table before the edit reached it: the table's
    number, the later one, ends in the table, at Salesforce and at Mailchimp. A phone edited at Salesforce
    after the table's change (the later one) ends in all three too."""
    harness, exits = pipeline
    db = contacts_db
    db.sql("INSERT INTO {} (person_no, mail, tel, given, family, kind, opted_in) VALUES"
           " ('ap-3', 'ap-3@example.com', '+14155550100', 'Cy', 'Lee', 'L', true),"
           " ('ap-4', 'ap-4@example.com', '+14155550100', 'Di', 'Lee', 'L', true)")
    base = await start_with_webhooks(harness, exits, env=db.env)
    applier()
    await db.capture(harness, "ap-3", "ap-4")

    async def phone_everywhere(record_id: str, phone: str) -> bool:
        at_salesforce = await sim_record(harness, "salesforce", record_id)
        at_mailchimp = await sim_record(harness, "mailchimp", record_id)
        return (at_salesforce is not None and at_salesforce["fields"].get("Phone") == phone
                and at_mailchimp is not None and at_mailchimp["fields"].get("PHONE") == phone)

    assert await eventually(lambda: phone_everywhere("ap-4", "+14155550100")), harness.logs()
    assert await phone_everywhere("ap-3", "+14155550100"), harness.logs()
    assert await eventually(lambda: echoes_judged(harness, base)), harness.logs()  # the first writes' echoes, dropped

    await sim_edit(harness, "salesforce", "ap-3", {"Phone": "+14155550111"})
    db.sql("UPDATE {} SET tel = '(415) 555-0122' WHERE person_no = 'ap-3'")  # the later change, from our side
    await db.capture(harness, "ap-3")
    db.sql("UPDATE {} SET tel = '(415) 555-0133' WHERE person_no = 'ap-4'")
    await db.capture(harness, "ap-4")
    assert await eventually(lambda: phone_everywhere("ap-4", "+14155550133")), harness.logs()
    await sim_edit(harness, "salesforce", "ap-4", {"Phone": "+14155550144"})  # the later change, at Salesforce

    assert await eventually(lambda: phone_everywhere("ap-3", "+14155550122")), harness.logs()
    assert await eventually(lambda: phone_everywhere("ap-4", "+14155550144")), harness.logs()
    assert await eventually(lambda: table_holds(db, "ap-4", tel="+14155550144")), db.row("ap-4")
    await asyncio.sleep(10)  # nothing older arrives after
    assert await table_holds(db, "ap-3", tel="(415) 555-0122"), db.row("ap-3")
    assert await table_holds(db, "ap-4", tel="+14155550144"), db.row("ap-4")
    assert await phone_everywhere("ap-3", "+14155550122") and await phone_everywhere("ap-4", "+14155550144")
