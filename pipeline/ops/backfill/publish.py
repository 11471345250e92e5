"""Backfill: the rows of a snapshot file or a database table onto ``contacts.cdc`` as Debezium
snapshot (``op: r``) events.

A row source (``pipeline.ops.backfill.from_file.FileRows``, ``pipeline.ops.backfill.from_postgres.TableRows``) reads the
rows; checking them as contacts (through the source mapping, as the validate stage reads them), the
events, the progress and the resuming are here, shared. An event carries the row's columns as the
table names them, like Debezium's own snapshot events, so the validate stage maps both alike.

Every event carries the same ``source`` block, fixed when the backfill begins: ``snapshot: true``,
``ts_ms`` the time the snapshot shows and the database ``lsn`` it was taken at, when known. A row's
version is that LSN, else ``ts_ms`` (the offset breaking ties within its millisecond), as for any CDC
event (``pipeline.stages.validate``), so a backfill never undoes a change newer than its snapshot.

It resumes: a state file records what the source was (a file's size and modification time, a
table's database and name), the source block, how many rows the broker has acknowledged and the key
of the last one. A run goes on after those rows (a file skips as many, a table reads the keys above
the last) with the same source block, and refuses if the source is another one. SIGINT or SIGTERM
stop a run once the chunk in flight is acknowledged and saved, so an interrupted and resumed backfill
sends every row exactly once; a kill between an acknowledgement and the state write sends up to one
chunk again: identical changes, which the pipeline's version guard passes over.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.errors import ConfigError
from pipeline.kafka.clients import acked_producer
from pipeline.kafka.pacing import Pace, chunk_size
from pipeline.kafka.producing import Outgoing
from pipeline.stages.source_mapping import SourceMapping
from schemas.cdc import ContactRow

CHUNK = 1000  # rows sent, acknowledged and saved at a time (fewer with a rate)


class BackfillState(BaseModel):
    """A backfill's progress, as its state file holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: dict[str, Any]
    source: dict[str, Any]
    rows_done: int = 0
    last_key: str | int | None = None


@dataclass(frozen=True)
class SourceRow:
    """One row checked as a contact: its record id and its columns as the source names them."""

    record_id: str | int
    columns: dict[str, Any]


class RowSource(Protocol):
    """Where a backfill's rows come from, checked as contacts, in an order that resumes."""

    label: str  # how messages name it: the file, or "table T"
    state_file: Path  # where its progress is kept unless told otherwise

    def origin(self) -> dict[str, Any]:
        """What a saved progress must have been made from to be resumed."""

    def snapshot_source(self, *, as_of_ms: int | None, lsn: int | None) -> dict[str, Any]:
        """The ``source`` block of a backfill beginning now (the given time and LSN, else its own)."""

    def remaining(self, state: BackfillState) -> int:
        """How many rows come after those ``state`` has done."""

    def rows(self, state: BackfillState) -> Iterator[SourceRow]:
        """The rows after those ``state`` has done, in order."""


def checked_row(document: Any, where: str, mapping: SourceMapping) -> SourceRow:
    """``document`` (column name to value) checked as a contact row through ``mapping``; a ConfigError
    saying ``where`` and the column if it is not one."""
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: expected an object of column names and values")
    try:
        row = ContactRow.model_validate(mapping.fields_of(document))
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "row"
        column = mapping.column_of().get(field, field)
        named = field if column == field else f"{column} ({field})"
        raise ConfigError(f"{where}: {named}: {first['msg']}") from None
    return SourceRow(row.id, document)


def source_block(name: str, table: str, ts_ms: int, lsn: int | None) -> dict[str, Any]:
    """The Debezium ``source`` block of a snapshot of ``table`` named ``name``."""
    source: dict[str, Any] = {"connector": "contactsync-backfill", "name": name, "table": table,
                              "snapshot": "true", "ts_ms": ts_ms}
    return source if lsn is None else {**source, "lsn": lsn}


def begin_or_resume(
    rows: RowSource, state_file: Path, *, as_of_ms: int | None, lsn: int | None
) -> BackfillState:
    """The saved progress of this backfill, or a fresh start; ConfigError if they disagree."""
    if not state_file.exists():
        return BackfillState(origin=rows.origin(), source=rows.snapshot_source(as_of_ms=as_of_ms, lsn=lsn))
    try:
        state = BackfillState.model_validate_json(state_file.read_text())
    except (OSError, ValidationError):
        raise ConfigError(f"{state_file} is not a readable backfill state: delete it to start over") from None
    origin = rows.origin()
    for key, then in state.origin.items():
        if origin.get(key) != then:
            raise ConfigError(f"{rows.label} changed since its backfill began ({key} {then}, now {origin.get(key)}): "
                              f"delete {state_file} to start over")
    asked = {"ts_ms": as_of_ms, "lsn": lsn}
    if any(value is not None and state.source.get(key) != value for key, value in asked.items()):
        raise ConfigError(f"the backfill of {rows.label} began with another --as-of or --lsn: pass the same "
                          f"or none, or delete {state_file} to start over")
    return state


def snapshot_event(row: SourceRow, source: dict[str, Any]) -> tuple[bytes, bytes]:
    """Key and value of the snapshot event for ``row``."""
    event = {"before": None, "after": row.columns, "source": source, "op": "r", "ts_ms": int(time.time() * 1000)}
    return str(row.record_id).encode(), json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


async def backfill(
    bootstrap: str, topic: str, rows: RowSource, state: BackfillState, state_file: Path, *,
    rate: float | None, on_sent: Callable[[int], None], retry_deadline_s: float,
) -> tuple[BackfillState, bool]:
    """Send the rows after ``state``, a chunk at a time (``rate`` rows per second at most), saving
    progress after each one; the last state, and whether every row was sent (False: a signal stopped it).
    A broker that stops acknowledging is waited for up to ``retry_deadline_s``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    pending, size = rows.rows(state), chunk_size(rate, CHUNK)
    try:
        async with acked_producer(bootstrap, "contactsync-backfill", retry_deadline_s) as producer:
            pace, sent = Pace(rate), 0
            while not (stopped := stop.is_set()) and (chunk := await asyncio.to_thread(_take, pending, size)):
                events = [snapshot_event(row, state.source) for row in chunk]
                await producer.send_all(Outgoing(topic, key, value) for key, value in events)
                done = {"rows_done": state.rows_done + len(chunk), "last_key": chunk[-1].record_id}
                state = state.model_copy(update=done)
                _save(state, state_file)
                on_sent(len(chunk))
                sent += len(chunk)
                await pace.until(sent)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return state, not stopped


def _save(state: BackfillState, state_file: Path) -> None:
    """Replace the state file whole, so that a kill leaves the old progress or the new one."""
    written = state_file.with_name(state_file.name + ".new")
    written.write_text(state.model_dump_json())
    os.replace(written, state_file)


def _take(rows: Iterator[SourceRow], count: int) -> list[SourceRow]:
    return list(islice(rows, count))
