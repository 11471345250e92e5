"""`contactsync backfill` on the real broker: snapshot files become CDC snapshot events the validate
stage accepts, a stopped backfill resumes after what was sent, and a bad row stops it before sending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.dev.local_stack import read_topic
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.backfill.from_file import FileRows
from pipeline.ops.backfill.publish import BackfillState
from pipeline.stages.source_mapping import IDENTITY
from pipeline.stages.validate import decode_change
from tests.cli_runner import cli_env, run_cli

pytestmark = pytest.mark.kafka


def _env(bootstrap: str, catalog: TopicCatalog) -> dict[str, str]:
    return cli_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap, CONTACTSYNC_KAFKA__TOPIC_PREFIX=catalog.prefix)


async def test_jsonl_and_csv_rows_become_snapshot_events_at_the_snapshot_version(
    kafka_bootstrap: str, catalog, tmp_path: Path
) -> None:
    """Each row is one `r` event keyed by its id that decodes to an upsert of that row, versioned by
    --lsn when given and by the snapshot time (--as-of, its offset breaking ties) otherwise; CSV
    flags and blanks are read."""
    jsonl = tmp_path / "contacts.jsonl"
    jsonl.write_text('{"id": 1, "email": "a@example.com", "unknown_column": 5}\n\n{"id": "c-2", "subscribed": true}\n')
    table = tmp_path / "contacts.csv"
    table.write_text("id,email,subscribed,do_not_sync,phone\n7,b@example.com,true,,\n8,,false,1,\n")
    env = _env(kafka_bootstrap, catalog)

    from_jsonl = run_cli(env, "backfill", "--from", str(jsonl), "--as-of", "2026-01-31T00:00:00Z")
    from_csv = run_cli(env, "backfill", "--from", str(table), "--lsn", "4242")

    assert from_jsonl.returncode == 0 and from_csv.returncode == 0, from_jsonl.stderr + from_csv.stderr
    messages = sorted(await read_topic(kafka_bootstrap, catalog.cdc), key=lambda m: m.key)
    changes = {m.key: decode_change(m.value, captured_at_ms=0, offset=m.offset) for m in messages}
    offsets = {m.key: m.offset for m in messages}
    assert list(changes) == [b"1", b"7", b"8", b"c-2"]
    assert all(json.loads(m.value)["op"] == "r" for m in messages)
    as_of = 1_769_817_600_000 * 10**20
    assert {key: (c.op, c.version) for key, c in changes.items() if c} == {
        b"1": ("upsert", as_of + offsets[b"1"]), b"c-2": ("upsert", as_of + offsets[b"c-2"]),
        b"7": ("upsert", 4242), b"8": ("upsert", 4242),
    }
    seven, eight = changes[b"7"].contact, changes[b"8"].contact
    assert (seven.email, seven.subscribed, seven.do_not_sync) == ("b@example.com", True, False)
    assert (eight.email, eight.do_not_sync, eight.phone) == (None, True, None)


async def test_a_stopped_backfill_resumes_after_the_rows_sent(kafka_bootstrap: str, catalog, tmp_path: Path) -> None:
    """With progress saved at row 1000 of 2500, a run sends rows 1001 to 2500 only, a rerun sends
    nothing, and a changed file is refused with one line."""
    rows = tmp_path / "big.jsonl"
    rows.write_text("".join(json.dumps({"id": n, "email": f"p{n}@example.com"}) + "\n" for n in range(1, 2501)))
    source = FileRows(rows, IDENTITY)
    stopped = BackfillState(origin=source.origin(), source=source.snapshot_source(as_of_ms=None, lsn=None),
                            rows_done=1000, last_key=1000)
    source.state_file.write_text(stopped.model_dump_json())
    env = _env(kafka_bootstrap, catalog)

    resumed = run_cli(env, "backfill", "--from", str(rows))
    again = run_cli(env, "backfill", "--from", str(rows))
    with rows.open("a") as more:
        more.write(json.dumps({"id": 2501}) + "\n")
    changed = run_cli(env, "backfill", "--from", str(rows))

    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after 1000 of 2500 rows" in resumed.stdout
    keys = sorted(int(m.key) for m in await read_topic(kafka_bootstrap, catalog.cdc))
    assert keys == list(range(1001, 2501))
    assert "all 2500 rows were sent already" in again.stdout
    assert changed.returncode == 2 and "changed since its backfill began" in changed.stderr
    assert changed.stderr.count("\n") == 1


async def test_a_bad_row_is_named_by_line_and_nothing_is_sent(kafka_bootstrap: str, catalog, tmp_path: Path) -> None:
    """A row without an id stops the backfill with file:line before any row is sent."""
    rows = tmp_path / "bad.jsonl"
    rows.write_text('{"id": 1}\n{"email": "x@example.com"}\n')

    done = run_cli(_env(kafka_bootstrap, catalog), "backfill", "--from", str(rows))

    assert done.returncode == 2 and done.stderr == f"contactsync: {rows}:2: id: Field required\n"
    assert await read_topic(kafka_bootstrap, catalog.cdc) == []
