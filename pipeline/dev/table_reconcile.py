"""Compare what each provider holds with the source table itself: the Postgres demo's and the CDC
tests' verdict.

What a provider should hold is every row of the table read through the source mapping and routed
by the pipeline's own rules (``expected_at_providers``). A row there counts as matched when every
field its provider payload carries (the provider's own mapper, the version left out: a table does
not know Debezium's LSN) equals what the provider holds; a row held with another value, or a record
held live that the table no longer has, is stale; a row missing is lost. As in ``reconcile``, a row
whose type moved it away from a provider may stay there as it was (the pipeline sends a provider no
delete for that), so only the providers a row routes to now are compared.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pipeline.dev.demo import held_records
from pipeline.dev.local_stack import WorkerProcess, poll_until
from pipeline.dev.reconcile import Held
from pipeline.providers import Mapper, build_mappers
from pipeline.settings import RoutingSettings, Settings
from pipeline.stages.source_mapping import SourceMapping
from pipeline.stages.transform import transform
from schemas.cdc import ContactRow
from schemas.contact import Contact, ContactChange

Expected = dict[str, dict[str, Contact]]  # provider -> record id -> the contact it must hold


@dataclass
class TableReconciliation:
    expected: int = 0  # (record, provider) pairs the table says must be live
    matched: int = 0
    lost: list[tuple[str, str]] = field(default_factory=list)  # (provider, record id): not there
    stale: list[tuple[str, str, str]] = field(default_factory=list)  # (provider, record id, field or "deleted")
    version_regressions: int = 0  # writes that went back in version, from the simulators' histories

    @property
    def settled(self) -> bool:
        return not self.lost and not self.stale


async def until_table_settled(
    dsn: str,
    table: str,
    mapping: SourceMapping,
    settings: Settings,
    base_urls: Mapping[str, str],
    timeout_s: float,
    worker: WorkerProcess | None = None,
) -> TableReconciliation:
    """Poll the table and the simulators until they agree (or ``timeout_s`` passes, or the worker stops)."""
    mappers, providers = build_mappers(settings.providers), tuple(base_urls)

    async def look() -> tuple[TableReconciliation, bool]:
        rows = table_rows(dsn, table)
        expected = expected_at_providers(rows, mapping, settings.routing, providers)
        in_table = {str(row[mapping.key_column]) for row in rows}
        verdict = reconcile_table(expected, in_table, await held_records(base_urls), mappers)
        return verdict, verdict.settled

    return await poll_until(look, timeout_s, worker)


def table_rows(dsn: str, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def expected_at_providers(
    rows: list[dict[str, Any]], mapping: SourceMapping, routing: RoutingSettings, providers: tuple[str, ...]
) -> Expected:
    """What each platform must hold: the rows read through the mapping, routed by the pipeline's rules."""
    expected: Expected = {provider: {} for provider in providers}
    for row in rows:
        fields = ContactRow.model_validate(mapping.fields_of(row))
        contact = Contact(**fields.model_dump(exclude={"id"}), id=str(fields.id))
        change = ContactChange(record_id=contact.id, op="upsert", version=1, source_ts_ms=0, captured_at_ms=0,
                               contact=contact)
        result, _ = transform(change, None, routing, providers)
        for provider in result.targets if result.stopped_by is None else ():
            assert result.change.contact is not None  # an upsert keeps its contact
            expected[provider][contact.id] = result.change.contact
    return expected


def reconcile_table(
    expected: Expected, in_table: Collection[str], held: Held, mappers: Mapping[str, Mapper]
) -> TableReconciliation:
    """``in_table``: the record ids of every row of the table, routed anywhere or not."""
    result = TableReconciliation(version_regressions=sum(
        int(view.get("version_regressions", 0)) for records in held.values() for view in records.values()
    ))
    for provider, contacts in expected.items():
        live = {rid: view for rid, view in held.get(provider, {}).items() if not view.get("archived")}
        result.stale += [(provider, rid, "deleted") for rid in sorted(set(live) - set(in_table))]
        for rid, contact in contacts.items():
            result.expected += 1
            if rid not in live:
                result.lost.append((provider, rid))
            elif wrong := _first_difference(_payload(mappers[provider], contact), _flat(live[rid]["fields"])):
                result.stale.append((provider, rid, wrong))
            else:
                result.matched += 1
    return result


def _payload(mapper: Mapper, contact: Contact) -> dict[str, Any]:
    change = ContactChange(record_id=contact.id, op="upsert", version=0, source_ts_ms=0, captured_at_ms=0,
                           contact=contact)
    return {name: value for name, value in _flat(mapper(change).payload).items() if "version" not in name.lower()}


def _first_difference(payload: Mapping[str, Any], held: Mapping[str, Any]) -> str | None:
    """The first field the provider stores whose held value is not the payload's; a view sharing no
    field with the payload is a difference too (nothing would be compared)."""
    if not payload.keys() & held.keys():
        return "no field in common"
    return next((name for name, value in payload.items() if name in held and held[name] != value), None)


def _flat(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Nested objects (HubSpot's ``properties``, Mailchimp's ``merge_fields``) flattened to their
    fields' own names, as the simulators store them."""
    flat: dict[str, Any] = {}
    for name, value in fields.items():
        flat |= _flat(value) if isinstance(value, Mapping) else {name: value}
    return flat
