"""Recording outcomes: one message per result on ``contacts.outcomes`` (keyed by record id: the audit
trail), and the recording stage's own row of the record-status table (``pipeline.stages.status``),
both produced with the batch that settled the change, so its offset is committed only after both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import faust
from faust.types import EventT

from pipeline.kafka.producing import Outgoing
from pipeline.kafka.stage_loop import BatchHandler
from pipeline.kafka.table_rows import get_row, set_row
from pipeline.ops.metrics import OutcomeCounts
from pipeline.stages.status import Writer, rows_after, status_key
from schemas.contact import DroppedField
from schemas.dispatch import DeliveryState, DispatchRecord, Outcome
from schemas.status import ProviderStatus


def outcome(
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
) -> Outcome:
    return Outcome(
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


def record_outcome(
    record: DispatchRecord,
    state: DeliveryState,
    *,
    attempts: int,
    provider_id: str | None = None,
    error: str | None = None,
) -> Outcome:
    """The outcome of one dispatch record, with what the transform stage dropped from its contact."""
    return outcome(
        record_id=record.record_id, provider=record.provider, version=record.version, state=state,
        source_ts_ms=record.source_ts_ms, attempts=attempts, provider_id=provider_id, error=error,
        dropped_fields=record.dropped_fields,
    )


class OutcomeRecorder:
    """One stage's outcomes: ``record`` gives each one's message; ``with_rows`` adds, once per batch,
    the stage's status rows for the outcomes among the batch's outputs, and counts them for
    ``/metrics``. (An outcome whose event was dead-lettered after all is not among them.)"""

    def __init__(self, topic: str, table: faust.Table[bytes, bytes], writer: Writer, counts: OutcomeCounts) -> None:
        self.topic = topic
        self.table = table
        self.writer: Writer = writer
        self.counts = counts
        self._recorded: dict[int, tuple[Outgoing, EventT[bytes], Outcome]] = {}  # by id() of the message

    def record(self, event: EventT[bytes], outcome: Outcome) -> Outgoing:
        """The message of ``outcome``, the result of handling ``event``; its row comes with ``with_rows``."""
        message = Outgoing(self.topic, outcome.record_id.encode(), outcome.model_dump_json().encode())
        self._recorded[id(message)] = (message, event, outcome)
        return message

    def with_rows(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """``outgoing`` (a batch's outputs) and the changelog messages of the status rows its
        outcomes changed, each row read and written once, in its event's partition."""
        recorded = [self._recorded[id(message)] for message in outgoing if id(message) in self._recorded]
        self._recorded = {}
        self.counts.count(outcome for _, _, outcome in recorded)
        event_of = {outcome.record_id: event for _, event, outcome in recorded}  # the record's partition

        def stored(record_id: str, provider: str) -> ProviderStatus | None:
            value = get_row(self.table, event_of[record_id], status_key(record_id, provider, self.writer))
            return ProviderStatus.model_validate_json(value) if value else None

        rows = rows_after((outcome for _, _, outcome in recorded), stored)
        return outgoing + [
            set_row(self.table, event_of[record_id], status_key(record_id, provider, self.writer),
                    entry.model_dump_json().encode())
            for (record_id, provider), entry in rows.items()
        ]

    def recording(self, handle: BatchHandler) -> BatchHandler:
        """``handle``, with the status rows of the outcomes it recorded added to its outputs."""

        async def handle_batch(events: Sequence[EventT[bytes]]) -> list[Outgoing]:
            return self.with_rows(await handle(events))

        return handle_batch
