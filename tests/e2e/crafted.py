"""Hand-made CDC events for tests that need particular records (the generator's are random)."""

from __future__ import annotations

import json
import time
from typing import Any

from pipeline.dev.cdc_generator import GeneratedEvent, Kind

VERSION_TS = int(time.time() * 1000)


def plain_upsert(record_id: str, *, seq: int = 1, **row: Any) -> GeneratedEvent:
    """A plain-form upsert of a customer ``record_id`` whose version is ``VERSION_TS * 1000 + seq``."""
    data = {"email": f"{record_id}@example.com", "contact_type": "customer", **row}
    return _plain("upsert", record_id, seq, data)


def plain_delete(record_id: str, *, seq: int, **row: Any) -> GeneratedEvent:
    """A plain-form delete of ``record_id`` (``row``: the columns the CDC tool knew) at ``seq``."""
    return _plain("delete", record_id, seq, row)


def _plain(op: str, record_id: str, seq: int, data: dict[str, Any]) -> GeneratedEvent:
    value = json.dumps({"op": op, "id": record_id, "ts": VERSION_TS, "seq": seq, "data": data}).encode()
    kind = Kind.DELETE if op == "delete" else Kind.CREATE
    return GeneratedEvent(record_id.encode(), value, kind, record_id, VERSION_TS * 1000 + seq)


def poison(record_id: str) -> GeneratedEvent:
    """An event that is not JSON: the validate stage dead-letters it."""
    return GeneratedEvent(record_id.encode(), b"{not json", Kind.INVALID_JSON, record_id, None)
