"""A real Postgres table through a real Kafka Connect worker with the Debezium connector into the
pipeline: a table whose columns are not named like the contact's fields, read through a source
mapping, ends up at the platforms' simulators as the table holds it, and every change is accounted for."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.dev import people_table
from pipeline.dev.demo import free_port
from pipeline.dev.jvm_process import wait_gone
from pipeline.dev.people_table import MAPPING, TABLE, ChangeMix, Statement
from pipeline.dev.table_reconcile import TableReconciliation, until_table_settled
from pipeline.ops.cdc_connector import slot_lag_bytes
from pipeline.settings import Settings
from pipeline.stages.source_mapping import load_source_mapping
from pipeline.stages.validate import UNAVAILABLE
from schemas.contact import ContactChange
from schemas.dead_letter import DeadLetter
from schemas.dispatch import Outcome
from schemas.headers import from_headers
from tests.cli_runner import run_cli
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.kafka

LONG_TITLE = "".join(chr(random.Random(5).randrange(0x4E00, 0x9FFF)) for _ in range(900))  # ~2.7 kB, TOASTed
SETTLE_S = 120
CAUGHT_UP_BYTES = 65_536


@dataclass
class Capture:
    """A pipeline reading ``TABLE`` through the Debezium connector of a Connect worker of its own."""

    harness: Pipeline
    dsn: str
    mapping_file: Path
    cli: dict[str, str]  # a ``contactsync`` command's environment, aimed at this pipeline and worker

    def sql(self, *statements: str, params: tuple[Any, ...] = ()) -> None:
        people_table.execute(self.dsn, [Statement(s, params if "%s" in s else ()) for s in statements])

    def connect_pid(self) -> int:
        return int((Path(self.cli["CONTACTSYNC_LOCAL_CONNECT__RUN_DIR"]) / "connect.pid").read_text())

    async def until_reconciled(self) -> TableReconciliation:
        """The platforms against the table, once they agree (or after SETTLE_S)."""
        assert self.harness.sims is not None
        return await until_table_settled(self.dsn, TABLE, load_source_mapping(self.mapping_file), Settings(),
                                         self.harness.sims.base_urls(), SETTLE_S)

    async def slot_lag_after(self, timeout_s: float) -> int:
        """The replication slot's lag in bytes once under ``CAUGHT_UP_BYTES``, or after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (lag := slot_lag_bytes(self.dsn, "contactsync-contacts") or 0) > CAUGHT_UP_BYTES:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        return lag

    async def dead_letter_reasons(self) -> list[str]:
        messages = await self.harness.messages(self.harness.catalog.dlq)
        return [from_headers(DeadLetter, m.headers).error_message for m in messages]


@pytest.fixture
def people(logical_postgres_dsn: str, tmp_path: Path) -> tuple[str, Path]:
    """``TABLE``, created empty in the logical-decoding cluster, and its source mapping's file."""
    people_table.create_table(logical_postgres_dsn)
    mapping_file = tmp_path / "source.yaml"
    mapping_file.write_text(MAPPING)
    return logical_postgres_dsn, mapping_file


async def start_capture(
    pipeline: tuple[Pipeline, AsyncExitStack], people: tuple[str, Path], tmp_path: Path
) -> Capture:
    """Start the workers and a Connect worker, and register the connector for ``TABLE`` (twice: the
    second time changes nothing)."""
    (harness, exits), (dsn, mapping_file) = pipeline, people
    env = {"CONTACTSYNC_SOURCE__MAPPING": str(mapping_file)}
    await harness.start(exits, env=env)
    cli = {**harness.cli_env(), **env, "CONTACTSYNC_LOCAL_CONNECT__RUN_DIR": str(tmp_path / "connect"),
           "CONTACTSYNC_LOCAL_CONNECT__PORT": str(free_port())}
    exits.callback(run_cli, cli, "connect", "stop")
    started = run_cli(cli, "connect", "start", timeout_s=600)  # fetches the jars the first time
    registered = run_cli(cli, "connect", "register", "--dsn", dsn, "--table", TABLE)
    again = run_cli(cli, "connect", "register", "--dsn", dsn, "--table", TABLE)
    assert started.returncode == 0, started.stderr + started.stdout
    assert registered.returncode == 0 and "registered" in registered.stdout, registered.stderr
    assert again.returncode == 0 and "updated" in again.stdout, again.stderr
    return Capture(harness, dsn, mapping_file, cli)


async def test_a_postgres_table_reaches_the_platforms_through_debezium(
    pipeline: tuple[Pipeline, AsyncExitStack], people: tuple[str, Path], tmp_path: Path
) -> None:
    """Snapshot, inserts, updates (one leaving a TOASTed column unchanged), a primary-key update and
    deletes end with each platform holding the table's rows under the mapping, never Debezium's
    placeholder; a partner and a typeless row are `unrouted` with their reason; the slot catches up
    after a large transaction; a truncate is dead-lettered with its reason; every changed
    record has an outcome."""
    people_table.execute(people[0], [Statement(
        f"INSERT INTO {TABLE} (person_no, mail, given, kind, opted_in, blocked, job) VALUES"
        " (1, 'p1@example.com', 'Ada', 'L', NULL, NULL, NULL),"
        " (2, 'p2@example.com', 'Bo', 'C', true, false, %s),"
        " (3, 'p3@example.com', 'Cy', 'C', NULL, NULL, 'CTO'),"
        " (4, 'p4@example.com', 'Di', 'P', false, false, NULL),"
        " (5, 'p5@example.com', 'Ed', 'L', true, NULL, NULL),"
        " (6, 'p6@example.com', 'Flo', NULL, false, NULL, NULL)", (LONG_TITLE,))])
    capture = await start_capture(pipeline, people, tmp_path)
    harness, cli = capture.harness, capture.cli

    capture.sql(
        f"INSERT INTO {TABLE} (person_no, mail, given, kind) VALUES (7, 'p7@example.com', 'Gus', 'C'),"
        " (8, 'p8@example.com', 'Hal', 'L')",
        f"UPDATE {TABLE} SET mail = 'p2.new@example.com' WHERE person_no = 2",  # job unchanged: TOASTed placeholder
        f"UPDATE {TABLE} SET given = 'Ada B.' WHERE person_no = 1",
        # a new key with the same email: the create of 30 names key 3 (__debezium.oldkey), so HubSpot
        # retries its email conflict until the delete of 3 (another partition, in no order) archives 3
        f"UPDATE {TABLE} SET person_no = 30 WHERE person_no = 3",
        f"DELETE FROM {TABLE} WHERE person_no IN (5, 8)")
    verdict = await capture.until_reconciled()

    assert verdict.settled and verdict.matched == verdict.expected > 0, (verdict, harness.logs(),
                                                                         await capture.dead_letter_reasons())
    held = await harness.held()
    assert held["hubspot"]["2"]["fields"]["jobtitle"] == LONG_TITLE
    assert held["hubspot"]["2"]["fields"]["email"] == "p2.new@example.com"
    assert held["hubspot"]["30"]["fields"]["email"] == "p3@example.com" and held["hubspot"]["3"]["archived"]
    validated = [ContactChange.model_validate_json(m.value) for m in await harness.messages(harness.catalog.validated)]
    assert [change.replaces for change in validated if change.record_id == "30"] == ["3"]
    assert UNAVAILABLE not in json.dumps(held)
    status = run_cli(cli, "status", "4")
    assert status.returncode == 0 and 'no provider for type "partner"' in status.stdout, status.stdout + status.stderr
    assert "no type, not subscribed" in run_cli(cli, "status", "6").stdout
    connect_status = run_cli(cli, "connect", "status", "--dsn", capture.dsn)
    assert connect_status.returncode == 0 and "task 0: RUNNING" in connect_status.stdout, connect_status.stdout
    assert "bytes behind" in connect_status.stdout

    # one transaction of 5,000 partners (unrouted: no deliveries), ~1 MB of WAL: once it is captured,
    # the connector's heartbeats move the slot's confirmed position past it
    capture.sql(f"INSERT INTO {TABLE} (person_no, mail, kind) SELECT g, 'bulk' || g || '@example.com', 'P'"
                " FROM generate_series(1000, 5999) g")
    assert await capture.slot_lag_after(90) <= CAUGHT_UP_BYTES

    capture.sql(f"TRUNCATE {TABLE}")
    deadline, reasons = time.monotonic() + 30, []
    while time.monotonic() < deadline and not any("truncate of table crm_people" in r for r in reasons):
        reasons = await capture.dead_letter_reasons()
        await asyncio.sleep(1)
    assert any("truncate of table crm_people (op t)" in reason for reason in reasons), reasons
    outcomes = await harness.messages(harness.catalog.outcomes)
    assert {"1", "2", "3", "4", "5", "6", "7", "8", "30"} <= {Outcome.model_validate_json(m.value).record_id
                                                               for m in outcomes}


async def test_a_killed_connect_worker_loses_nothing_and_leaves_nothing_stale(
    pipeline: tuple[Pipeline, AsyncExitStack], people: tuple[str, Path], tmp_path: Path
) -> None:
    """The Connect worker SIGKILLed while SQL changes are written, changes written while it is down,
    then restarted: every platform ends equal to the table under the mapping (0 lost, 0 stale), no
    record's version went backwards anywhere, and every changed row has an outcome."""
    mix = ChangeMix(seed=13)
    people_table.execute(people[0], mix.inserts(20))  # captured by the connector's initial snapshot
    capture = await start_capture(pipeline, people, tmp_path)
    harness, dsn = capture.harness, capture.dsn
    before_kill, while_down, while_starting, after = (list(mix.changes(n)) for n in (120, 40, 40, 60))

    writing = asyncio.create_task(asyncio.to_thread(people_table.execute, dsn, before_kill + while_down, 20))
    await asyncio.sleep(3)  # about 60 changes in
    pid = capture.connect_pid()
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid, 10)
    await writing  # the rest of the first 120, and 40 more, while no worker runs
    writing = asyncio.create_task(asyncio.to_thread(people_table.execute, dsn, while_starting, 10))
    restarted = await asyncio.to_thread(run_cli, capture.cli, "connect", "start", timeout_s=300)
    await writing
    people_table.execute(dsn, after, 20)
    assert restarted.returncode == 0 and "started" in restarted.stdout, restarted.stderr + restarted.stdout

    verdict = await capture.until_reconciled()
    assert not verdict.lost and not verdict.stale, (verdict, harness.logs(), await capture.dead_letter_reasons())
    assert verdict.matched == verdict.expected > 20, verdict
    regressions = await harness.regressions()
    assert not regressions, harness.report_regressions(regressions)
    changed = {str(statement.params[-1] if "WHERE" in statement.sql else statement.params[0])
               for statement in [*before_kill, *while_down, *while_starting, *after]}
    deadline, outcomes = time.monotonic() + 30, set()
    while not changed <= outcomes and time.monotonic() < deadline:  # unrouted ones may still be on their way
        outcomes = {Outcome.model_validate_json(m.value).record_id for m in await harness.messages(harness.catalog.outcomes)}
        await asyncio.sleep(1)
    assert changed <= outcomes, sorted(changed - outcomes)
