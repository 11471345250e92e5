"""Record status, ``contacts.outcomes`` → the record-status table: the newest outcome per provider."""

from __future__ import annotations

from faust.types import EventT, StreamT

from pipeline.app import app, settings, tables, topics
from pipeline.producing import Outgoing
from pipeline.stage_loop import per_event, run_stage
from pipeline.table_rows import set_row
from schemas.dispatch import Outcome
from pipeline.stages.status import apply_outcome
from schemas.status import RecordStatus

STAGE = "status"


def record_outcome(event: EventT) -> list[Outgoing]:
    outcome = Outcome.model_validate_json(event.message.value)
    key = outcome.record_id.encode()
    stored = tables.status.get(key)
    status = RecordStatus.model_validate_json(stored) if stored else RecordStatus()
    return [set_row(tables.status, event, key, apply_outcome(status, outcome).model_dump_json().encode())]


@app.agent(topics.outcomes, name=STAGE)
async def status(stream: StreamT) -> None:
    await run_stage(
        app, stream, STAGE, per_event(STAGE, topics.catalog.dlq, record_outcome),
        batch_max=settings.batch_max, within_s=settings.batch_within_s,
    )
