"""Outcome messages: one per delivery result, keyed by record id, on ``contacts.outcomes``."""

from __future__ import annotations

import time

from pipeline.kafka.producing import Outgoing
from schemas.dispatch import DeliveryState, Outcome


def outcome(
    topic: str,
    *,
    record_id: str,
    provider: str,
    version: int,
    state: DeliveryState,
    source_ts_ms: int,
    attempts: int = 1,
    provider_id: str | None = None,
    error: str | None = None,
) -> Outgoing:
    value = Outcome(
        record_id=record_id,
        provider=provider,
        version=version,
        state=state,
        at_ms=int(time.time() * 1000),
        source_ts_ms=source_ts_ms,
        attempts=attempts,
        provider_id=provider_id,
        error=error,
    )
    return Outgoing(topic, record_id.encode(), value.model_dump_json().encode())
