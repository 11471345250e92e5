"""What one platform change (``contacts.changes.inbound``) does to its row of the contacts table.

The table holds each field in the column the source mapping names (``pipeline.stages.source_mapping``,
the mapping CDC decoding and the backfill read rows through). Only the fields the change carries
are written. Each field's write is guarded by its **applied clock**: the platform time of the
change that last set it (the ``platform_at_ms`` of the conflict stage's decision, the time it
decided last-writer-wins by). A field is written only when the change is later than that time, so
an older change, a replay or a redelivery never overwrites a newer one, and applying twice changes
nothing the second time. A delete is kept in the clock as the time of ``ROW`` (the whole row): a
change older than it does not bring the row back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.stages.source_mapping import SourceMapping
from schemas.inbound import FieldValue, InboundResolved

ROW = "*row"  # the clock's entry for the row itself (its delete); no contact field is named so
Action = Literal["upsert", "delete", "nothing"]


@dataclass(frozen=True)
class RowWrite:
    """The columns to set (column -> value), the clock entries to store with them (field -> time),
    and what was left out: fields set by a later change, fields the table has no column for."""

    action: Action
    insert: bool = False  # the row may be inserted (a contact created at a platform)
    columns: dict[str, FieldValue] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)
    older: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()


def plan_write(change: InboundResolved, mapping: SourceMapping, applied: dict[str, int]) -> RowWrite:
    """The write ``change`` makes, given its row's applied clock (field -> time; empty: never applied)."""
    if change.op == "delete":
        if max(applied.values(), default=-1) >= change.occurred_at_ms:
            return RowWrite("nothing", older=(ROW,))
        return RowWrite("delete", times={ROW: change.occurred_at_ms})
    times = _field_times(change)
    newer = {name: value for name, value in change.fields.items() if times[name] > _applied_at(applied, name)}
    older = tuple(sorted(set(change.fields) - set(newer)))
    column_of = mapping.column_of()
    unmapped = tuple(sorted(name for name in newer if name not in column_of))
    columns = {column_of[name]: _column_value(mapping, name, value) for name, value in newer.items()
               if name in column_of}
    if not columns:
        return RowWrite("nothing", older=older, unmapped=unmapped)
    written = {name: times[name] for name in newer if name in column_of}
    return RowWrite("upsert", change.new_record, columns, written, older, unmapped)


def _field_times(change: InboundResolved) -> dict[str, int]:
    """Each carried field's time: its decision's platform time (the change's time without one)."""
    decided = {decision.field: decision.platform_at_ms for decision in change.decisions}
    return {name: decided.get(name, change.occurred_at_ms) for name in change.fields}


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
