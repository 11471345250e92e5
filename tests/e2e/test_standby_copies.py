"""Each worker keeps a warm copy of the table partitions it does not own (Faust's standby replicas)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import rocksdict

from pipeline.dev.cdc_generator import generate_events
from pipeline.dev.local_stack import read_topic

OFFSET_KEY = b"__faust\0offset__"  # where Faust's RocksDB store keeps the changelog offset a copy holds


@pytest.mark.timeout(300)
async def test_both_workers_hold_every_table_partition_as_its_changelog_says(pipeline) -> None:
    """Two workers, one standby copy each (the default): once the changes settled and the workers
    stopped, each worker's data dir holds every partition of every table, its own and the other's,
    each caught up with its changelog and with exactly the rows the changelog ends with. So either
    worker can take over the other's partitions without reading their changelogs first."""
    harness, exits = pipeline
    await harness.start(exits, workers=2)
    events = list(generate_events(3000, records=600, seed=5))
    await harness.publish(events)
    verdict = await harness.settle(events, timeout_s=180)
    assert (verdict.lost, verdict.stale) == ([], []), harness.logs()
    await asyncio.sleep(3)  # the last rows reach the copies a fetch later
    await harness.stop()

    changelogs = {
        name: await read_topic(harness.bootstrap, topic) for name, topic in _changelogs(harness.catalog).items()
    }
    partitions = harness.catalog.partitions
    for worker in harness.workers:
        for table, messages in changelogs.items():
            for partition in range(partitions):
                held = _rows_in(_database(worker.data_dir, table, partition))
                offset = int(held.pop(OFFSET_KEY, b"-1"))
                in_log = [m for m in messages if m.partition == partition]
                assert offset == (in_log[-1].offset if in_log else -1), (worker.data_dir, table, partition)
                assert held == _latest_rows(in_log), (worker.data_dir, table, partition)


@pytest.mark.timeout(300)
async def test_tables_kept_in_memory_are_copied_from_the_changelog_too(pipeline) -> None:
    """With tables in memory (``CONTACTSYNC_TABLE_STORE=memory://``), whose store keeps keys and values
    decoded, each worker's standby copy takes the other's changelog rows and both workers keep
    running: every change arrives, none stale, and no worker stopped on a row it could not read."""
    harness, exits = pipeline
    await harness.start(exits, workers=2, env={"CONTACTSYNC_TABLE_STORE": "memory://"})
    events = list(generate_events(3000, records=600, seed=5))
    await harness.publish(events)
    verdict = await harness.settle(events, timeout_s=180)
    assert (verdict.lost, verdict.stale) == ([], []), harness.logs()
    await asyncio.sleep(3)  # the last rows reach the copies a fetch later
    assert all(worker.running for worker in harness.workers), harness.logs()
    assert not [w.log_file for w in harness.workers if "Crashed" in w.log_file.read_text()], harness.logs()


def _changelogs(catalog) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Table name -> its changelog topic (``pipeline.kafka.tables.create_tables``)."""
    return {
        "last-known": catalog.last_known_changelog,
        "record-status": catalog.record_status_changelog,
        **{f"delivered-version.{name}": catalog.delivered_version_changelog(name) for name in catalog.providers},
    }


def _database(data_dir: Path, table: str, partition: int) -> Path:
    (path,) = data_dir.glob(f"**/tables/{table}-{partition}.db")
    return path


def _rows_in(path: Path) -> dict[bytes, bytes]:
    database = rocksdict.Rdict(
        str(path), options=rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only()
    )
    try:
        return dict(database.items())
    finally:
        database.close()


def _latest_rows(messages) -> dict[bytes, bytes]:  # type: ignore[no-untyped-def]
    rows: dict[bytes, bytes] = {}
    for message in messages:
        if message.value is None:
            rows.pop(message.key, None)
        else:
            rows[message.key] = message.value
    return rows
