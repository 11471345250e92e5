"""Record status, ``contacts.outcomes`` → the record-status table: the newest outcome per provider.

A batch's outcomes are folded per record first, so each record's row is read and written once per
batch. The stage also counts the outcomes for ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT, StreamT

from pipeline.app import app, context
from pipeline.kafka.messages import value_of
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.stage_loop import decode_each, run_stage
from pipeline.kafka.table_rows import get_row, set_row
from pipeline.stages.status import statuses_after
from schemas.dispatch import Outcome
from schemas.status import RecordStatus

STAGE = "status"


def decode_outcome(event: EventT[bytes]) -> tuple[EventT[bytes], Outcome]:
    return event, Outcome.model_validate_json(value_of(event))


async def record_outcomes(events: Sequence[EventT[bytes]]) -> list[Outgoing]:
    decoded, dead = decode_each(events, STAGE, decode_outcome, context.topics.catalog.dlq)
    context.outcome_counts.count(outcome for _, outcome in decoded)
    event_of = {outcome.record_id: event for event, outcome in decoded}  # the record's partition

    def stored(record_id: str) -> RecordStatus:
        value = get_row(context.tables.status, event_of[record_id], record_id.encode())
        return RecordStatus.model_validate_json(value) if value else RecordStatus()

    statuses = statuses_after((outcome for _, outcome in decoded), stored)
    return dead + [
        set_row(context.tables.status, event_of[record_id], record_id.encode(), status.model_dump_json().encode())
        for record_id, status in statuses.items()
    ]


@app.agent(context.topics.outcomes, name=STAGE)
async def status(stream: StreamT[bytes]) -> None:
    await run_stage(
        app, stream, STAGE, record_outcomes,
        faults=context.faults, batch_max=context.settings.batch_max, within_s=context.settings.batch_within_s,
    )
