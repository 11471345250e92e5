"""Compare what each provider holds with what it should hold: the demo's and the tests' verdict.

What a provider should hold follows from the newest source version of every record and the
pipeline's own routing rules: a live record routed to a provider must be there at exactly its
newest version (or have been dead-lettered at that version, which accounts for it); a deleted
record must not be live anywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.dev.cdc_generator import ExpectedRecord
from pipeline.settings import RoutingSettings
from pipeline.stages.transform import transform
from schemas.contact import Contact, ContactChange

Held = Mapping[str, Mapping[str, Mapping[str, Any]]]  # provider -> record id -> /_sim/records view


@dataclass(frozen=True)
class Miss:
    record_id: str
    provider: str
    expected_version: int
    held_version: int | None


@dataclass
class Reconciliation:
    expected: int = 0  # (record, provider) pairs that must hold the newest version
    matched: int = 0
    dead_lettered: int = 0
    lost: list[Miss] = field(default_factory=list)  # nothing there, and not dead-lettered
    stale: list[Miss] = field(default_factory=list)  # an older version there (or live after a delete)
    version_regressions: int = 0  # writes that went back in version, from the simulators' histories

    @property
    def settled(self) -> bool:
        return not self.lost and not self.stale


def reconcile(
    expected: Mapping[str, ExpectedRecord],
    held: Held,
    routing: RoutingSettings,
    providers: tuple[str, ...],
    dead_letters: Collection[tuple[str, str, int]] = (),
) -> Reconciliation:
    """``dead_letters`` are (record id, provider, version) of deliveries that were dead-lettered."""
    result = Reconciliation(
        version_regressions=sum(
            int(view.get("version_regressions", 0)) for records in held.values() for view in records.values()
        )
    )
    for record in expected.values():
        if record.deleted:
            for provider in providers:
                view = held.get(provider, {}).get(record.record_id)
                if view is None or view.get("archived"):
                    continue
                if (record.record_id, provider, record.version) in dead_letters:
                    result.dead_lettered += 1  # the delete itself was dead-lettered: accounted for
                else:
                    result.stale.append(Miss(record.record_id, provider, record.version, _version(view)))
            continue
        for provider in _targets(record, routing, providers):
            result.expected += 1
            view = held.get(provider, {}).get(record.record_id)
            held_version = _version(view) if view is not None and not view.get("archived") else None
            if held_version == record.version:
                result.matched += 1
            elif (record.record_id, provider, record.version) in dead_letters:
                result.dead_lettered += 1
            elif held_version is None:
                result.lost.append(Miss(record.record_id, provider, record.version, None))
            else:
                result.stale.append(Miss(record.record_id, provider, record.version, held_version))
    return result


def _targets(record: ExpectedRecord, routing: RoutingSettings, providers: tuple[str, ...]) -> list[str]:
    """Where the pipeline's own rules send this record's newest version (none if a rule stops it)."""
    assert record.contact is not None
    row = record.contact.model_dump()
    contact = Contact(**{**row, "id": str(row["id"])})
    change = ContactChange(
        record_id=record.record_id, op="upsert", version=record.version,
        source_ts_ms=0, captured_at_ms=0, contact=contact,
    )
    result, _ = transform(change, None, routing, providers)
    return [] if result.stopped_by is not None else result.targets


def _version(view: Mapping[str, Any]) -> int | None:
    version = view.get("version")
    return int(version) if version not in (None, "") else None
