"""Stage 3, ``contacts.transformed`` → ``contacts.dispatch.<provider>``: map for each target.

Each target provider's field mapping turns the contact into that provider's payload. A change that
cannot be mapped for one provider is dead-lettered for that provider only.
"""

from __future__ import annotations

from faust.types import EventT, StreamT

from pipeline.app import app, context
from pipeline.delivery.outcomes import OutcomeRecorder, outcome
from pipeline.errors import PermanentError
from pipeline.kafka.dead_letters import dead_letter
from pipeline.kafka.messages import value_of
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.stage_loop import per_event, run_stage
from pipeline.providers import build_mappers
from schemas.contact import TransformedChange

STAGE = "route"
MAPPERS = build_mappers(context.settings.providers)
OUTCOMES = OutcomeRecorder(context.topics.catalog.outcomes, context.tables.status, "route", context.outcome_counts)


def route_event(event: EventT[bytes]) -> list[Outgoing]:
    transformed = TransformedChange.model_validate_json(value_of(event))
    if transformed.stopped_by is not None:
        return []  # the transform stage recorded it as skipped_by_rule
    change, dropped = transformed.change, transformed.dropped_fields
    outgoing: list[Outgoing] = []
    for provider in transformed.targets:
        try:
            record = MAPPERS[provider](change)
            if dropped:
                record = record.model_copy(update={"dropped_fields": dropped})
        except PermanentError as exc:
            outgoing += [
                dead_letter(context.topics.catalog.dlq, event, STAGE, exc, provider=provider),
                OUTCOMES.record(event, outcome(
                    record_id=change.record_id, provider=provider,
                    version=change.version, state="dead_lettered", source_ts_ms=change.source_ts_ms,
                    attempts=0, error=str(exc), dropped_fields=dropped,
                )),
            ]
            continue
        outgoing.append(
            Outgoing(context.topics.catalog.dispatch(provider), change.record_id.encode(),
                     record.model_dump_json().encode())
        )
    return outgoing


@app.agent(context.topics.transformed, name=STAGE)
async def route(stream: StreamT[bytes]) -> None:
    await run_stage(
        app, stream, STAGE, OUTCOMES.recording(per_event(STAGE, context.topics.catalog.dlq, route_event)),
        faults=context.faults, batch_max=context.settings.batch_max, within_s=context.settings.batch_within_s,
    )
