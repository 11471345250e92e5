"""Stage 2, ``contacts.validated`` → ``contacts.transformed``: normalise, apply rules, pick targets.

Keeps the last known contact of every record, so that a delete (which may carry only the key) is
routed to where the record went and can be mapped (Mailchimp needs the email). A change that a rule
stops is recorded as ``skipped_by_rule`` for each provider it would have gone to.
"""

from __future__ import annotations

from faust.types import EventT, StreamT

from pipeline.app import app, settings, tables, topics
from pipeline.outcomes import outcome
from pipeline.producing import Outgoing
from pipeline.stage_loop import per_event, run_stage
from pipeline.stages.transformation import transform
from schemas.contact import Contact, ContactChange

STAGE = "transform"
PROVIDERS = tuple(settings.providers.enabled())


def transform_event(event: EventT) -> list[Outgoing]:
    change = ContactChange.model_validate_json(event.message.value)
    key = change.record_id.encode()
    known = tables.last_known.get(key)
    result = transform(
        change, Contact.model_validate_json(known) if known else None, settings.routing, PROVIDERS
    )
    if change.op == "delete":
        tables.last_known.pop(key, None)
    elif result.change.contact is not None:
        tables.last_known[key] = result.change.contact.model_dump_json().encode()
    outgoing = [Outgoing(topics.catalog.transformed, key, result.model_dump_json().encode())]
    stopped = result.stopped_by
    if stopped is not None:
        outgoing += [
            outcome(
                topics.catalog.outcomes,
                record_id=change.record_id,
                provider=provider,
                version=change.version,
                state="skipped_by_rule",
                source_ts_ms=change.source_ts_ms,
                attempts=0,
                error=f"{stopped.rule}: {stopped.reason}",
            )
            for provider in result.targets
        ]
    return outgoing


@app.agent(topics.validated, name=STAGE)
async def transform_stage(stream: StreamT) -> None:
    await run_stage(
        app, stream, STAGE, per_event(STAGE, topics.catalog.dlq, transform_event),
        batch_max=settings.batch_max, within_s=settings.batch_within_s,
    )
