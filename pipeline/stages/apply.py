"""What one platform change (``contacts.changes.inbound``) does to its row of the contacts table.

The table holds each field in the column the source mapping names (``pipeline.stages.source_mapping``,
the mapping CDC decoding and the backfill read rows through). Only the fields the change carries
are written. Each field's write is guarded by its **applied clock**: the platform time of the
change that last set it (the ``platform_at_ms`` of the conflict stage's decision, the time it
decided last-writer-wins by). A field is written only when the change is later than that time, so
an older change, a replay or a redelivery never overwrites a newer one, and applying twice changes
nothing the second time. A delete is kept in the clock as the time of ``ROW`` (the whole row): a
change older than it does not bring the row back.

The table may also have changed since the conflict stage decided: its own write, still on its way
through CDC, that the stage has not seen. Each decision carries the value the stage held for the
field (``ours_value``); when the table holds neither that nor the platform's value, the table's
write is the later one (it was made after the stage's last look at the field) and is kept: its CDC
change carries it to the platforms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from pipeline.stages.conflict import contact_values
from pipeline.stages.source_mapping import SourceMapping
from pipeline.stages.transform import normalise
from schemas.cdc import ContactRow
from schemas.contact import Contact
from schemas.inbound import FieldDecision, FieldValue, InboundResolved

ROW = "*row"  # the clock's entry for the row itself (its delete); no contact field is named so
Action = Literal["upsert", "delete", "nothing"]


@dataclass(frozen=True)
class RowWrite:
    """The columns to set (column -> value), the clock entries to store with them (field -> time),
    and what was left out: fields set by a later change, fields the table changed since the conflict
    stage decided, fields the table has no column for."""

    action: Action
    insert: bool = False  # the row may be inserted (a contact created at a platform)
    columns: dict[str, FieldValue] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)
    older: tuple[str, ...] = ()
    changed_in_table: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()


def plan_write(
    change: InboundResolved, mapping: SourceMapping, applied: dict[str, int], held: dict[str, FieldValue] | None
) -> RowWrite:
    """The write ``change`` makes, given its row's applied clock (field -> time; empty: never applied)
    and the row's values now (``held_values``; None: no such row)."""
    if change.op == "delete":
        if max(applied.values(), default=-1) >= change.occurred_at_ms:
            return RowWrite("nothing", older=(ROW,))
        return RowWrite("delete", times={ROW: change.occurred_at_ms})
    decisions = {decision.field: decision for decision in change.decisions}
    times = {name: decisions[name].platform_at_ms if name in decisions else change.occurred_at_ms
             for name in change.fields}
    newer = {name: value for name, value in change.fields.items() if times[name] > _applied_at(applied, name)}
    changed = {name for name, value in newer.items() if _changed_in_table(decisions.get(name), value, held)}
    column_of = mapping.column_of()
    unmapped = tuple(sorted(name for name in newer if name not in column_of))
    kept = {name: value for name, value in newer.items() if name in column_of and name not in changed}
    older = tuple(sorted(set(change.fields) - set(newer)))
    if not kept:
        return RowWrite("nothing", older=older, changed_in_table=tuple(sorted(changed)), unmapped=unmapped)
    columns = {column_of[name]: _column_value(mapping, name, value) for name, value in kept.items()}
    times_kept = {name: times[name] for name in kept}
    return RowWrite("upsert", change.new_record, columns, times_kept, older, tuple(sorted(changed)), unmapped)


def held_values(row: dict[str, object], mapping: SourceMapping, phone_region: str) -> dict[str, FieldValue]:
    """A row's values as the conflict stage holds them: by field name, normalised as the transform stage
    writes them; empty when the row is not a valid contact (nothing to compare)."""
    try:
        contact = Contact(id="", **ContactRow.model_validate(mapping.fields_of(row)).model_dump(exclude={"id"}))
    except ValidationError:
        return {}
    values = contact_values(normalise(contact, phone_region)[0])
    return {name: value for name, value in values.items() if name in mapping.column_of()}


def _changed_in_table(decision: FieldDecision | None, value: FieldValue, held: dict[str, FieldValue] | None) -> bool:
    if decision is None or decision.ours_at_ms is None or held is None or decision.field not in held:
        return False
    return held[decision.field] not in (decision.ours_value, value)


def _applied_at(applied: dict[str, int], name: str) -> int:
    """When the field was last set by an applied change, or the row deleted, whichever is later."""
    return max(applied.get(name, -1), applied.get(ROW, -1))


def _column_value(mapping: SourceMapping, name: str, value: FieldValue) -> FieldValue:
    """The value as the table holds it: a contact type in the table's own code (``L`` for lead) when
    the mapping has one."""
    if name == "contact_type" and isinstance(value, str):
        codes = {kind: code for code, kind in mapping.contact_types.items()}
        return codes.get(value, value)
    return value
