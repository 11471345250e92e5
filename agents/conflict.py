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

from pipeline.app import app, context
from pipeline.kafka.messages import value_of
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.stage_loop import per_event, run_stage
from pipeline.kafka.table_rows import get_row, set_row
from pipeline.stages.conflict import observe, resolve
from schemas.contact import TransformedChange
from schemas.inbound import InboundChange, RecordClock

STAGE = "conflict"
log = structlog.get_logger(__name__)


def conflict_event(event: EventT[bytes]) -> list[Outgoing]:
    if event.message.topic == context.topics.catalog.inbound:
        return _resolve(event)
    transformed = TransformedChange.model_validate_json(value_of(event))
    key = transformed.change.record_id.encode()
    row = observe(_clock(event, key), transformed)
    return [] if row is None else [set_row(context.tables.field_clock, event, key, row.model_dump_json().encode())]


def _resolve(event: EventT[bytes]) -> list[Outgoing]:
    inbound = InboundChange.model_validate_json(value_of(event))
    key = inbound.record_id.encode()
    result = resolve(_clock(event, key), inbound, context.settings.routing.default_phone_region)
    context.webhook_counts.resolved[(inbound.provider, result.outcome)] += 1
    log.info("inbound change", stage=STAGE, record_id=inbound.record_id, provider=inbound.provider,
             kind=inbound.kind, outcome=result.outcome,
             decisions=[(d.field, d.winner, d.platform_at_ms, d.ours_at_ms) for d in result.decisions])
    outgoing: list[Outgoing] = []
    if result.resolved is not None:
        resolved = result.resolved.model_dump_json().encode()
        outgoing.append(Outgoing(context.topics.catalog.changes_inbound, key, resolved))
    if result.change is not None:
        outgoing.append(Outgoing(context.topics.catalog.validated, key, result.change.model_dump_json().encode()))
    if result.clock is not None:  # the row last: nothing after it can fail and drop its changelog message
        outgoing.append(set_row(context.tables.field_clock, event, key, result.clock.model_dump_json().encode()))
    return outgoing


def _clock(event: EventT[bytes], key: bytes) -> RecordClock | None:
    stored = get_row(context.tables.field_clock, event, key)
    return RecordClock.model_validate_json(stored) if stored else None


async def conflict(stream: StreamT[bytes]) -> None:
    await run_stage(
        app, stream, STAGE, per_event(STAGE, context.topics.catalog.dlq, conflict_event),
        faults=context.faults, batch_max=context.settings.batch_max, within_s=context.settings.batch_within_s,
    )


# Only a worker with a receiver configured keeps field clocks: without webhooks no platform change
# comes in, and the stage would cost every change a table row for nothing. (A record whose fields were
# set before the receivers were turned on has no clock: the platform's change wins those fields.)
if context.settings.webhooks.receiving:
    app.agent(context.topics.conflict, name=STAGE)(conflict)
