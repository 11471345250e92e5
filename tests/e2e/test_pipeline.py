"""The whole pipeline on the real broker, delivering to the simulators over HTTP."""

from __future__ import annotations

from collections import Counter

from pipeline.dev.cdc_generator import INVALID_KINDS, Kind, expected_state, generate_events
from pipeline.settings import RoutingSettings
from pipeline.stages.transform import transform
from schemas.contact import Contact, ContactChange
from schemas.dead_letter import DeadLetter
from schemas.dispatch import Outcome
from schemas.headers import from_headers

REASONS = {
    Kind.INVALID_JSON: "undecodable JSON",
    Kind.MISSING_ID: "no record id",
    Kind.BAD_EMAIL: "email is not a valid address",
    Kind.UNKNOWN_OP: "invalid event",
}


async def test_each_provider_ends_with_the_newest_version_and_poison_is_dead_lettered(pipeline) -> None:
    """Creates, updates and deletes of many records land at their newest version at every provider
    they are routed to; rule-stopped changes are reported as skipped; poison events are in the DLQ
    with their reason while the good events around them are delivered."""
    harness, exits = pipeline
    await harness.start(exits)
    events = list(generate_events(900, records=200, seed=11, invalid_ratio=0.05))
    assert {e.kind for e in events} >= {Kind.CREATE, Kind.UPDATE, Kind.DELETE, *INVALID_KINDS}
    await harness.publish(events)

    verdict = await harness.settle(events)

    assert (verdict.lost, verdict.stale) == ([], []), (verdict.lost[:3], verdict.stale[:3], harness.logs())
    assert verdict.version_regressions == 0
    assert verdict.matched + verdict.dead_lettered == verdict.expected and verdict.matched > 150
    held = await harness.held()
    assert all(len(records) > 20 for records in held.values()), "every provider got records"

    letters = await harness.messages(harness.catalog.dlq)
    poison = [m for m in letters if from_headers(DeadLetter, m.headers).stage == "validate"]
    sent = Counter(e.kind for e in events if e.kind in INVALID_KINDS)
    assert len(poison) == sum(sent.values())
    by_value = {e.value: e.kind for e in events if e.kind in INVALID_KINDS}
    for message in poison:
        letter = from_headers(DeadLetter, message.headers)
        assert REASONS[by_value[message.value]] in letter.error_message
        assert (letter.original_topic, letter.error_class) == (harness.catalog.cdc, "InvalidEventError")

    outcomes = [Outcome.model_validate_json(m.value) for m in await harness.messages(harness.catalog.outcomes)]
    skipped = {(o.record_id, o.version) for o in outcomes if o.state == "skipped_by_rule"}
    for record in expected_state(events).values():
        if record.deleted or record.contact is None:
            continue
        row = record.contact.model_dump()
        change = ContactChange(record_id=record.record_id, op="upsert", version=record.version,
                               source_ts_ms=0, captured_at_ms=0, contact=Contact(**{**row, "id": str(row["id"])}))
        result, _ = transform(change, None, RoutingSettings(), ("hubspot", "salesforce", "mailchimp"))
        if result.stopped_by is not None and result.targets:
            assert (record.record_id, record.version) in skipped, record.record_id
