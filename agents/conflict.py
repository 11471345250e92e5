"""The conflict stage: ``contacts.transformed`` and ``contacts.inbound`` → ``contacts.changes.inbound``
and ``contacts.validated``.

It observes every change on its way to the platforms (each field's time and value, and the values
of our last versions) in the field-clock table, and decides each platform change against them: an
echo of our own write is dropped and counted, a change that wins a field goes to the contacts
database and, as a ContactChange, through the normal path to the platforms
(``pipeline.stages.conflict``).
"""

from __future__ import annotations

import structlog
from faust.types import EventT, StreamT

from pipeline.app import app, faults, settings, tables, topics, webhook_counts
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.stage_loop import per_event, run_stage
from pipeline.kafka.table_rows import get_row, set_row
from pipeline.stages.conflict import observe, resolve
from schemas.contact import TransformedChange
from schemas.inbound import InboundChange, RecordClock

STAGE = "conflict"
log = structlog.get_logger(__name__)


def conflict_event(event: EventT) -> list[Outgoing]:
    if event.message.topic == topics.catalog.inbound:
        return _resolve(event)
    transformed = TransformedChange.model_validate_json(event.message.value)
    key = transformed.change.record_id.encode()
    row = observe(_clock(event, key), transformed)
    return [] if row is None else [set_row(tables.field_clock, event, key, row.model_dump_json().encode())]


def _resolve(event: EventT) -> list[Outgoing]:
    inbound = InboundChange.model_validate_json(event.message.value)
    key = inbound.record_id.encode()
    result = resolve(_clock(event, key), inbound, settings.routing.default_phone_region)
    webhook_counts.resolved[(inbound.provider, result.outcome)] += 1
    log.info("inbound change", stage=STAGE, record_id=inbound.record_id, provider=inbound.provider,
             kind=inbound.kind, outcome=result.outcome,
             decisions=[(d.field, d.winner, d.platform_at_ms, d.ours_at_ms) for d in result.decisions])
    outgoing: list[Outgoing] = []
    if result.resolved is not None:
        outgoing.append(Outgoing(topics.catalog.changes_inbound, key, result.resolved.model_dump_json().encode()))
    if result.change is not None:
        outgoing.append(Outgoing(topics.catalog.validated, key, result.change.model_dump_json().encode()))
    if result.clock is not None:  # the row last: nothing after it can fail and drop its changelog message
        outgoing.append(set_row(tables.field_clock, event, key, result.clock.model_dump_json().encode()))
    return outgoing


def _clock(event: EventT, key: bytes) -> RecordClock | None:
    stored = get_row(tables.field_clock, event, key)
    return RecordClock.model_validate_json(stored) if stored else None


@app.agent(topics.conflict, name=STAGE)
async def conflict(stream: StreamT) -> None:
    await run_stage(
        app, stream, STAGE, per_event(STAGE, topics.catalog.dlq, conflict_event),
        faults=faults, batch_max=settings.batch_max, within_s=settings.batch_within_s,
    )
