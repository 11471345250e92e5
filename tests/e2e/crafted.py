"""Hand-made CDC events for tests that need particular records (the generator's are random)."""

from __future__ import annotations

import json
import time
from typing import Any

from pipeline.cdc_generator import GeneratedEvent, Kind

VERSION_TS = int(time.time() * 1000)


def plain_upsert(record_id: str, **row: Any) -> GeneratedEvent:
    """A plain-form upsert of a customer ``record_id`` whose version is ``VERSION_TS * 1000 + 1``."""
    data = {"email": f"{record_id}@example.com", "contact_type": "customer", **row}
    value = json.dumps({"op": "upsert", "id": record_id, "ts": VERSION_TS, "seq": 1, "data": data}).encode()
    return GeneratedEvent(record_id.encode(), value, Kind.CREATE, record_id, VERSION_TS * 1000 + 1)


def poison(record_id: str) -> GeneratedEvent:
    """An event that is not JSON: the validate stage dead-letters it."""
    return GeneratedEvent(record_id.encode(), b"{not json", Kind.INVALID_JSON, record_id, None)
