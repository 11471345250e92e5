"""One record's delivery status, found without knowing which worker owns it.

The record-status table's changelog is compacted and keyed like the stage topics, so the newest
row of a record is the last message with its key (``pipeline.kafka.key_lookup``). Or a worker answers
``GET /records/{id}``, routed to the worker that owns the key.
"""

from __future__ import annotations

from typing import Any

from pipeline.kafka.key_lookup import messages_with_key
from pipeline.ops.worker_api import ask_worker
from pipeline.settings import AdminSettings
from schemas.status import RecordStatus


def status_document(record_id: str, status: RecordStatus) -> dict[str, Any]:
    """The JSON answer for one record: its id and, per provider, the newest thing that happened."""
    return {"record_id": record_id, **status.model_dump(mode="json")}


async def status_from_changelog(bootstrap: str, changelog: str, partitions: int, record_id: str) -> RecordStatus | None:
    """The newest row of ``record_id`` in the table's changelog (None: no row, or deleted)."""
    rows = await messages_with_key(bootstrap, changelog, partitions, record_id.encode())
    newest = rows[-1].value if rows else None
    return None if newest is None else RecordStatus.model_validate_json(newest)


async def status_from_worker(admin: AdminSettings, url: str, record_id: str) -> RecordStatus | None:
    """Ask a worker's web server (any worker: it forwards to the one that owns the record), with the API
    key when one is configured (a worker whose views are closed asks for it)."""
    document = await ask_worker(admin, "GET", url, f"/records/{record_id}", not_found_ok=True)
    return None if document is None else RecordStatus.model_validate({"providers": document["providers"]})
