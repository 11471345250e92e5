"""Backfill: a snapshot file's rows onto ``contacts.cdc`` as Debezium snapshot (``op: r``) events.

Every event carries the same ``source`` block, fixed when the backfill begins: ``snapshot: true``,
``ts_ms`` the time the snapshot shows (by default the file's modification time) and, if given, the
database ``lsn`` it was taken at. A row's version is that LSN, else ``ts_ms`` (the offset breaking
ties within its millisecond), as for any CDC event (``pipeline.stages.validation``), so a backfill
never undoes a change newer than its snapshot.

It resumes: ``<file>.backfill.json`` beside the input records the file's size and modification
time, the source block and how many rows the broker has acknowledged. A run starts after those rows
and refuses if the file changed. A crash between an acknowledgement and the state write sends up to
one chunk again, identical events the pipeline's version guard passes over.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.errors import ConfigError
from pipeline.kafka_clients import acked_producer
from pipeline.snapshot_file import read_rows
from schemas.cdc import ContactRow

CHUNK = 1000


class BackfillState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int
    mtime_ns: int
    source: dict[str, Any]
    rows_done: int = 0


def snapshot_source(path: Path, *, as_of_ms: int | None, lsn: int | None) -> dict[str, Any]:
    """The Debezium ``source`` block of a backfill of ``path``."""
    ts_ms = as_of_ms if as_of_ms is not None else path.stat().st_mtime_ns // 1_000_000
    source: dict[str, Any] = {"connector": "contactsync-backfill", "name": path.name, "table": "contacts",
                              "snapshot": "true", "ts_ms": ts_ms}
    return source if lsn is None else {**source, "lsn": lsn}


def state_path(path: Path) -> Path:
    return path.with_name(path.name + ".backfill.json")


def begin_or_resume(path: Path, source: dict[str, Any]) -> BackfillState:
    """The saved progress of this file's backfill, or a fresh start; ConfigError if they disagree."""
    stat = path.stat()
    saved = state_path(path)
    if not saved.exists():
        return BackfillState(size=stat.st_size, mtime_ns=stat.st_mtime_ns, source=source)
    state = BackfillState.model_validate_json(saved.read_text())
    if (state.size, state.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        raise ConfigError(f"{path} changed since its backfill began: delete {saved} to start over")
    if state.source != source:
        raise ConfigError(f"the backfill of {path} began with another --as-of or --lsn: pass the same, "
                          f"or delete {saved} to start over")
    return state


def snapshot_event(row: ContactRow, source: dict[str, Any]) -> tuple[bytes, bytes]:
    """Key and value of the snapshot event for ``row``."""
    event = {"before": None, "after": row.model_dump(mode="json"), "source": source, "op": "r",
             "ts_ms": int(time.time() * 1000)}
    return str(row.id).encode(), json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


async def backfill(
    bootstrap: str, topic: str, path: Path, state: BackfillState, on_sent: Callable[[int], None]
) -> BackfillState:
    """Send the rows after ``state.rows_done``, a chunk at a time, saving progress after each one."""
    rows = islice(read_rows(path), state.rows_done, None)
    async with acked_producer(bootstrap, "contactsync-backfill") as producer:
        while chunk := list(islice(rows, CHUNK)):
            events = [snapshot_event(row, state.source) for row in chunk]
            await asyncio.gather(*[await producer.send(topic, value, key=key) for key, value in events])
            state = state.model_copy(update={"rows_done": state.rows_done + len(chunk)})
            state_path(path).write_text(state.model_dump_json())
            on_sent(len(chunk))
    return state
