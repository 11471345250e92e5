"""One record's delivery status, found without knowing which worker owns it.

Each stage that records outcomes keeps its own rows of the record-status table, one per record and
provider (``pipeline.stages.status``), all in the record's partition; the status is those rows
merged. The table's changelog is compacted and partitioned like the stage topics, so the rows are
the newest message of each of the record's row keys in the record id's partition
(``pipeline.kafka.key_lookup``). Or a worker answers ``GET /records/{id}``, routed to the worker that
owns the record's partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust

from pipeline.kafka.key_lookup import messages_with_keys
from pipeline.ops.worker_api import ask_worker
from pipeline.settings import AdminSettings
from pipeline.stages.status import merged_status, record_row_keys
from schemas.status import RecordStatus


def status_document(record_id: str, status: RecordStatus) -> dict[str, Any]:
    """The JSON answer for one record: its id and, per provider, the newest thing that happened."""
    return {"record_id": record_id, **status.model_dump(mode="json")}


def status_from_table(
    table: faust.Table[bytes, bytes], providers: Iterable[str], record_id: str
) -> RecordStatus | None:
    """The status of ``record_id`` from the rows a worker holds (None: no row)."""
    keys = record_row_keys(record_id, providers)
    return merged_status((key, value) for key in keys if (value := table.get(key)) is not None)


async def status_from_changelog(
    bootstrap: str, changelog: str, providers: Iterable[str], partitions: int, record_id: str
) -> RecordStatus | None:
    """The status of ``record_id`` from the newest of each of its rows in the table's changelog
    (None: no row, or all deleted)."""
    keys = set(record_row_keys(record_id, providers))
    newest = {message.key: message.value for message in
              await messages_with_keys(bootstrap, changelog, partitions, record_id.encode(), keys)}
    return merged_status((key, value) for key, value in newest.items() if key is not None and value is not None)


async def status_from_worker(admin: AdminSettings, url: str, record_id: str) -> RecordStatus | None:
    """Ask a worker's web server (any worker: it forwards to the one that owns the record), with the API
    key when one is configured (a worker whose views are closed asks for it)."""
    document = await ask_worker(admin, "GET", url, f"/records/{record_id}", not_found_ok=True)
    return None if document is None else RecordStatus.model_validate({"providers": document["providers"]})
