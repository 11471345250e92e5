"""Outcome messages: one per delivery result, keyed by record id, on ``contacts.outcomes``."""

from __future__ import annotations

import time

from pipeline.kafka.producing import Outgoing
from schemas.contact import DroppedField
from schemas.dispatch import DeliveryState, DispatchRecord, Outcome


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
    dropped_fields: tuple[DroppedField, ...] = (),
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
        dropped_fields=dropped_fields,
    )
    return Outgoing(topic, record_id.encode(), value.model_dump_json().encode())


def record_outcome(
    topic: str,
    record: DispatchRecord,
    state: DeliveryState,
    *,
    attempts: int,
    provider_id: str | None = None,
    error: str | None = None,
) -> Outgoing:
    """The outcome of one dispatch record, with what the transform stage dropped from its contact."""
    return outcome(
        topic, record_id=record.record_id, provider=record.provider, version=record.version, state=state,
        source_ts_ms=record.source_ts_ms, attempts=attempts, provider_id=provider_id, error=error,
        dropped_fields=record.dropped_fields,
    )
