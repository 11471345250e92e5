"""The conflict stage's logic: platform changes against ours, field by field, last writer wins.

Every change on its way to the platforms (``contacts.transformed``) is observed: each field whose
value changed is marked with the change's own time (the source's commit time, or the platform's
time for a change that came back), and the change's values are kept for the last ``SENT_KEPT``
versions. A platform change (``contacts.inbound``) is then:

- an **echo** when it is our own write coming back: it only touches our own properties (the
  version we wrote), or every value it carries equals what one of our last versions held (the
  version the platform names, when the notification carries our version property); dropped;
- **unchanged** when every value equals what the record holds now;
- else decided per field: the platform wins a field when its change is later than the time the
  field was last set (an unsubscribe always wins: it must never be lost to a clock difference).

The winning fields go out twice: as ``InboundResolved`` for the contacts database, and as a
``ContactChange`` onto ``contacts.validated`` so the normal path delivers them to the platforms.
That change's version is the record's newest version + 1: above every version delivered for the
record (so the version guards let it through) and below any later source change, whose version is
larger by far (an LSN advances by the size of a WAL record, time-based versions by 10**20 per
millisecond; see ``pipeline.stages.validate``). Once the database owner applies the change, it
comes back from CDC with its own, larger version and the same values: delivered again, and its
echoes dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.stages.transform import normalise
from schemas.contact import Contact, ContactChange, TransformedChange
from schemas.inbound import FieldDecision, FieldMark, FieldValue, InboundChange, InboundResolved, RecordClock

SENT_KEPT = 8  # versions whose values are kept to recognise echoes that arrive late
Outcome = Literal["echo", "unchanged", "kept_ours", "applied", "deleted"]


@dataclass(frozen=True)
class Resolution:
    outcome: Outcome
    clock: RecordClock | None = None  # the row to store, when it changed
    resolved: InboundResolved | None = None
    change: ContactChange | None = None
    decisions: tuple[FieldDecision, ...] = ()


def contact_values(contact: Contact) -> dict[str, FieldValue]:
    """A contact's fields by canonical name, without its id."""
    values: dict[str, FieldValue] = contact.model_dump(exclude={"id"})
    return values


def observe(clock: RecordClock | None, transformed: TransformedChange) -> RecordClock | None:
    """The row after ``transformed`` went out to the platforms; None when it changes nothing (a
    replayed, older version)."""
    change = transformed.change
    clock = clock or RecordClock()
    if change.version < clock.version:
        return None
    if change.op == "delete" or change.contact is None:
        return RecordClock(version=change.version, deleted=True, sent=_kept(clock.sent, change.version, {}))
    values = contact_values(change.contact)
    marks = dict(clock.fields)
    for name, value in values.items():
        mark = marks.get(name)
        if mark is None or mark.value != value:
            marks[name] = FieldMark(value=value, at_ms=change.source_ts_ms, by=change.origin)
    return RecordClock(version=change.version, fields=marks, sent=_kept(clock.sent, change.version, values))


def resolve(clock: RecordClock | None, inbound: InboundChange, phone_region: str) -> Resolution:
    """What to do with one platform change, given the record's row (None: never seen)."""
    clock = clock or RecordClock()
    if inbound.echo_only:
        return Resolution("echo")
    values = normalised_values(inbound, phone_region)
    if inbound.op == "delete":
        return Resolution("echo") if clock.deleted else _deleted(clock, inbound)
    if _is_echo(clock, inbound.platform_version, values):
        return Resolution("echo")
    decisions = tuple(
        _decide(name, value, clock.fields.get(name), inbound)
        for name, value in values.items()
        if name not in clock.fields or clock.fields[name].value != value
    )
    won = {decision.field: decision.value for decision in decisions if decision.winner == "platform"}
    if not decisions:
        return Resolution("unchanged")
    if not won:
        return Resolution("kept_ours", decisions=decisions)
    return _applied(clock, inbound, won, decisions)


def normalised_values(inbound: InboundChange, phone_region: str) -> dict[str, FieldValue]:
    """The notification's values as the transform stage would write them (lower-case email, E.164)."""
    if not inbound.fields:
        return {}
    contact, _ = normalise(Contact(id=inbound.record_id, **inbound.fields), phone_region)  # type: ignore[arg-type]
    values = contact_values(contact)
    return {name: values[name] for name in inbound.fields}


def _is_echo(clock: RecordClock, platform_version: int | None, values: dict[str, FieldValue]) -> bool:
    if not values:
        return False
    candidates = [
        sent for version, sent in clock.sent.items() if platform_version is None or version == platform_version
    ]
    return any(all(name in sent and sent[name] == value for name, value in values.items()) for sent in candidates)


def _decide(name: str, value: FieldValue, mark: FieldMark | None, inbound: InboundChange) -> FieldDecision:
    unsubscribe = name == "subscribed" and value is False
    later = mark is None or inbound.occurred_at_ms > mark.at_ms
    return FieldDecision(
        field=name, value=value, platform_at_ms=inbound.occurred_at_ms,
        ours_at_ms=mark.at_ms if mark else None, ours_by=mark.by if mark else None,
        ours_value=mark.value if mark else None,
        winner="platform" if later or unsubscribe else "ours",
    )


def _applied(
    clock: RecordClock, inbound: InboundChange, won: dict[str, FieldValue], decisions: tuple[FieldDecision, ...]
) -> Resolution:
    version = clock.version + 1
    marks = dict(clock.fields) | {
        name: FieldMark(value=value, at_ms=inbound.occurred_at_ms, by=inbound.provider) for name, value in won.items()
    }
    values = {name: mark.value for name, mark in marks.items()}
    contact = Contact(id=inbound.record_id, **values)  # type: ignore[arg-type]
    change = ContactChange(
        record_id=inbound.record_id, op="upsert", version=version, source_ts_ms=inbound.occurred_at_ms,
        captured_at_ms=inbound.received_at_ms, contact=contact, origin=inbound.provider,
    )
    row = RecordClock(version=version, fields=marks, sent=_kept(clock.sent, version, contact_values(contact)))
    return Resolution("applied", row, _resolved(inbound, version, won, decisions), change, decisions)


def _deleted(clock: RecordClock, inbound: InboundChange) -> Resolution:
    """A platform's delete goes to the contacts database only: the database decides, and its own
    delete then reaches every platform through CDC."""
    newest = max((mark.at_ms for mark in clock.fields.values()), default=None)
    if newest is not None and newest >= inbound.occurred_at_ms:
        return Resolution("kept_ours")
    return Resolution("deleted", resolved=_resolved(inbound, clock.version, {}, ()))


def _resolved(
    inbound: InboundChange, version: int, won: dict[str, FieldValue], decisions: tuple[FieldDecision, ...]
) -> InboundResolved:
    return InboundResolved(
        record_id=inbound.record_id, provider=inbound.provider, platform_id=inbound.platform_id,
        new_record=inbound.new_record, op=inbound.op, occurred_at_ms=inbound.occurred_at_ms,
        version=version, fields=won, decisions=list(decisions),
    )


def _kept(
    sent: dict[int, dict[str, FieldValue]], version: int, values: dict[str, FieldValue]
) -> dict[int, dict[str, FieldValue]]:
    newest = sorted({**sent, version: values}.items())[-SENT_KEPT:]
    return dict(newest)
