"""Stage 2, ``contacts.validated`` → ``contacts.transformed``: normalise, apply rules, pick targets.

Keeps the last known contact of every record and where it was routed, so that a delete (which may
carry only the key) reaches every provider that holds the record and can be mapped (Mailchimp needs
the email). A change that a rule stops is recorded as ``skipped_by_rule`` for each provider it
would have gone to; a change that goes to no provider as ``unrouted``, with the reason. The rules
are those in force when the event is handled (``pipeline.runtime_config``).
"""

from __future__ import annotations

from faust.types import EventT, StreamT

from pipeline.app import app, context
from pipeline.delivery.outcomes import OutcomeRecorder, outcome
from pipeline.kafka.messages import value_of
from pipeline.kafka.producing import Outgoing, request_limit, require_fit
from pipeline.kafka.stage_loop import per_event, run_stage
from pipeline.kafka.table_rows import delete_row, get_row, set_row
from pipeline.stages.transform import transform, unrouted_reason
from schemas.contact import ContactChange, KnownContact
from schemas.dispatch import NO_PROVIDER

STAGE = "transform"
PROVIDERS = tuple(context.settings.providers.enabled())
OUTCOMES = OutcomeRecorder(context.topics.catalog.outcomes, context.tables.status, "transform", context.outcome_counts)


def transform_event(event: EventT[bytes]) -> list[Outgoing]:
    change = ContactChange.model_validate_json(value_of(event))
    key = change.record_id.encode()
    stored = get_row(context.tables.last_known, event, key)
    known = KnownContact.model_validate_json(stored) if stored else None
    result, remember = transform(change, known, context.runtime.rules, PROVIDERS)
    outgoing = [Outgoing(context.topics.catalog.transformed, key, result.model_dump_json().encode())]
    stopped = result.stopped_by
    if not result.targets:
        outgoing.append(OUTCOMES.record(event, outcome(
            record_id=change.record_id, provider=NO_PROVIDER, version=change.version,
            state="unrouted", source_ts_ms=change.source_ts_ms, attempts=0,
            error=unrouted_reason(result.change.contact, context.runtime.rules, PROVIDERS),
            dropped_fields=result.dropped_fields,
        )))
    elif stopped is not None:
        outgoing += [
            OUTCOMES.record(event, outcome(
                record_id=change.record_id,
                provider=provider,
                version=change.version,
                state="skipped_by_rule",
                source_ts_ms=change.source_ts_ms,
                attempts=0,
                error=f"{stopped.rule}: {stopped.reason}",
                dropped_fields=result.dropped_fields,
            ))
            for provider in result.targets
        ]
    require_fit(outgoing, request_limit(app))  # before the row is stored: the event may be dead-lettered
    # The row last: nothing after it can fail and drop its changelog message. An older change than
    # the row's gets the row itself back (``transform``), and leaves it as it is.
    if remember is None and stored is not None:
        outgoing.append(delete_row(context.tables.last_known, event, key))
    elif remember is not None and remember is not known:
        outgoing.append(set_row(context.tables.last_known, event, key, remember.model_dump_json().encode()))
    return outgoing


@app.agent(context.topics.validated, name=STAGE)
async def transform_stage(stream: StreamT[bytes]) -> None:
    await context.runtime.caught_up.wait()  # the rules stored before this worker started are in force
    await run_stage(
        app, stream, STAGE, OUTCOMES.recording(per_event(STAGE, context.topics.catalog.dlq, transform_event)),
        faults=context.faults, batch_max=context.settings.batch_max, within_s=context.settings.batch_within_s,
    )
