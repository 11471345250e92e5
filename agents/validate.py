"""Stage 1, ``contacts.cdc`` → ``contacts.validated``: decode CDC events into canonical changes.

Rows are read through the source mapping (``settings.source.mapping``). Undecodable or invalid
events are dead-lettered with the reason; tombstones, heartbeats and transaction metadata are
consumed quietly.
"""

from __future__ import annotations

from faust.types import EventT, StreamT

from pipeline.app import app, context
from pipeline.kafka.messages import headers_of
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.stage_loop import per_event, run_stage
from pipeline.stages.source_mapping import load_source_mapping
from pipeline.stages.validate import decode_change

STAGE = "validate"
MAPPING = load_source_mapping(context.settings.source.mapping)  # checked by `contactsync worker` before it starts


def validate_event(event: EventT[bytes]) -> list[Outgoing]:
    message = event.message
    change = decode_change(
        message.value, captured_at_ms=int(message.timestamp * 1000), offset=message.offset, mapping=MAPPING,
        headers=headers_of(event),
    )
    if change is None:
        return []  # a tombstone: it exists for log compaction, there is nothing to deliver
    return [
        Outgoing(context.topics.catalog.validated, change.record_id.encode(), change.model_dump_json().encode())
    ]


@app.agent(context.topics.cdc, name=STAGE)
async def validate(stream: StreamT[bytes]) -> None:
    await run_stage(
        app, stream, STAGE, per_event(STAGE, context.topics.catalog.dlq, validate_event),
        faults=context.faults, batch_max=context.settings.batch_max, within_s=context.settings.batch_within_s,
    )
