"""Salesforce REST API: Leads and Contacts upserted by an external id field.

Auth and error bodies: ``salesforce_api`` (OAuth2 session, refreshed after a 401). Upserts: sObject
Collections ``PATCH .../composite/sobjects/{SObject}/{ExternalIdField}``, one call per SObject type
in the batch; the answers' Ids are kept in the version guard row. Deletes: ``DELETE
.../composite/sobjects?ids=...`` by those Ids; for a record whose Ids the row does not hold (a row
from before Ids were kept, a record created elsewhere), first ``GET .../query`` for the Ids of its
external id in every mapped SObject. A record that is not found is already gone. (Kept Ids cover
every SObject the pipeline upserted the record to; a copy made outside the pipeline in another
SObject under the same external id is not looked for.)
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Self

import httpx
from pydantic import BaseModel, TypeAdapter, model_validator

from pipeline.errors import DeliveryError, PermanentError, RetryableError
from pipeline.providers.base import DeliveryResult
from pipeline.providers.http import Answer, clip, parse
from pipeline.providers.ledger import Entry, Ledger
from pipeline.providers.mapping import ChangeMapper, FieldMap, MappingFile, apply_fields, load_mapping
from pipeline.providers.salesforce_api import SalesforceApi
from pipeline.settings import SalesforceSettings
from schemas.contact import Contact, ContactChange, ContactField
from schemas.dispatch import DispatchRecord
from schemas.providers import SalesforceRecord, SalesforceRecordRef

NAME = "salesforce"
_COLLECTION_MAX = 200
# Per-record status codes that another attempt can clear; every other code is permanent.
_RETRYABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK"})
# What a delete may answer for an Id whose record is already gone (in the recycle bin, or removed for
# good, which Salesforce reports as an invalid reference): the delete's end state holds either way.
_GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})


class _RecordError(Answer):
    statusCode: str = ""  # noqa: N815 - Salesforce's wire name
    message: str = ""


class _SaveResult(Answer):
    id: str | None = None
    success: bool
    errors: list[_RecordError] = []


class _Query(Answer):
    records: list[dict[str, object]]


_SAVE_RESULTS = TypeAdapter(list[_SaveResult])
_QUERY = TypeAdapter(_Query)


class SalesforceProvider:
    """Delivers dispatch records to Salesforce with a connected app's OAuth2 credentials.

    """

    name = NAME

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._external_id_field = settings.external_id_field
        self._api = SalesforceApi(settings, transport=transport)

    async def deliver(self, batch: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        ledger = Ledger(batch)
        upserts = ledger.entries("upsert", SalesforceRecord)
        for _, group in groupby(sorted(upserts, key=_sobject), key=_sobject):
            await ledger.run(list(group), self._upsert)
        await ledger.run(ledger.entries("delete", SalesforceRecordRef), self._delete)
        return ledger.results()

    async def aclose(self) -> None:
        await self._api.aclose()

    async def _upsert(self, entries: Sequence[Entry[SalesforceRecord]]) -> list[DeliveryResult]:
        path = f"/composite/sobjects/{_sobject(entries[0])}/{self._external_id_field}"
        body = {"allOrNone": False, "records": [entry.payload.model_dump() for entry in entries]}
        answers = parse(await self._api.call("PATCH", path, json=body), _SAVE_RESULTS)
        if len(answers) != len(entries):
            # Results come in request order; a different count cannot be attributed to records.
            error = RetryableError("Salesforce answered with a different count", code="unattributed")
            return [entry.failed(error) for entry in entries]
        return [
            entry.ok(answer.id, provider_ids=_with_id(entry.record.provider_ids, answer.id))
            if answer.success else entry.failed(_record_error(answer))
            for entry, answer in zip(entries, answers, strict=True)
        ]

    async def _delete(self, entries: Sequence[Entry[SalesforceRecordRef]]) -> list[DeliveryResult]:
        """Delete by the Ids the version guard kept; query only for records whose Ids it does not know."""
        found: dict[str, list[str]] = {  # external id -> Salesforce ids (a Lead and a Contact...)
            entry.record.key: list(entry.record.provider_ids)
            for entry in entries if entry.record.provider_ids is not None
        }
        unknown = [entry for entry in entries if entry.record.provider_ids is None]
        for sobject in sorted({t for entry in unknown for t in entry.payload.sobject_types}):
            keys = [entry.record.key for entry in unknown if sobject in entry.payload.sobject_types]
            for external_id, salesforce_id in await self._find(sobject, keys):
                found.setdefault(external_id, []).append(salesforce_id)
        ids = [salesforce_id for ids in found.values() for salesforce_id in ids]
        deleted: dict[str, _SaveResult] = {}
        for start in range(0, len(ids), _COLLECTION_MAX):
            chunk = ids[start : start + _COLLECTION_MAX]
            params = {"ids": ",".join(chunk), "allOrNone": "false"}
            response = await self._api.call("DELETE", "/composite/sobjects", params=params)
            answers = parse(response, _SAVE_RESULTS)
            deleted |= dict(zip(chunk, answers, strict=False))
        return [_deleted(entry, found.get(entry.record.key, []), deleted) for entry in entries]

    async def _find(self, sobject: str, keys: Sequence[str]) -> list[tuple[str, str]]:
        """(external id, Salesforce id) of the ``sobject`` records with these external ids."""
        # At most 200 keys of a unique field: one page of answers (pages hold 200 to 2,000 rows).
        field = self._external_id_field
        values = ", ".join(soql_quote(key) for key in keys)
        soql = f"SELECT Id, {field} FROM {sobject} WHERE {field} IN ({values})"
        answer = parse(await self._api.call("GET", "/query", params={"q": soql}), _QUERY)
        rows = [row for row in answer.records if field in row and "Id" in row]
        return [(str(row[field]), str(row["Id"])) for row in rows]


def _sobject(entry: Entry[SalesforceRecord]) -> str:
    return entry.payload.attributes.type


def request_of(record: DispatchRecord) -> str:
    """The call that carries ``record``: an upsert its SObject's collection (``deliver`` makes one
    request per SObject), every delete the one collection delete."""
    if record.op != "upsert":
        return record.op
    attributes = record.payload.get("attributes")
    return f"upsert {attributes.get('type') if isinstance(attributes, dict) else None}"


def _record_error(answer: _SaveResult) -> DeliveryError:
    """One record's failure: retryable for the few codes another attempt can clear."""
    first = answer.errors[0] if answer.errors else _RecordError(statusCode="UNKNOWN")
    message = clip(f"Salesforce {first.statusCode}: {first.message}")
    if first.statusCode in _RETRYABLE_CODES:
        return RetryableError(message, code=first.statusCode)
    return PermanentError(message, code=first.statusCode)


def _deleted(
    entry: Entry[SalesforceRecordRef], ids: list[str], deleted: dict[str, _SaveResult]
) -> DeliveryResult:
    """Done when every record found under the external id is deleted (or was already)."""
    for salesforce_id in ids:
        answer = deleted.get(salesforce_id)
        if answer is None:
            return entry.failed(RetryableError("no delete result for this record", code="unattributed"))
        codes = {error.statusCode for error in answer.errors}
        if not (answer.success or codes and codes <= _GONE_CODES):
            return entry.failed(_record_error(answer))
    return entry.ok(ids[0] if ids else None, provider_ids=())


def _with_id(held: tuple[str, ...] | None, salesforce_id: str | None) -> tuple[str, ...] | None:
    """The Ids the record lives under once upserted as ``salesforce_id``: the held ones (a record
    upserted as a Lead stays one after it is upserted as a Contact) and this one; None when the
    held ones are not known."""
    if held is None or salesforce_id is None:
        return None
    return held if salesforce_id in held else (*held, salesforce_id)


_SOQL_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
)


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal (backslash escapes for quotes, backslash and controls)."""
    return "'" + value.translate(_SOQL_ESCAPES) + "'"


class _ObjectMapping(MappingFile):
    fields: FieldMap
    placeholders: dict[str, str] = {}


class _SObjectBy(MappingFile):
    field: ContactField
    values: dict[str, str]
    default: str


class _Mapping(MappingFile):
    sobject_by: _SObjectBy
    objects: dict[str, _ObjectMapping]
    version: str

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        missing = {*self.sobject_by.values.values(), self.sobject_by.default} - set(self.objects)
        if missing:
            raise ValueError(f"SObjects without a field mapping under objects: {sorted(missing)}")
        return self


class SalesforceMapper(ChangeMapper):
    """Contact changes to Salesforce records, from ``pipeline/mappings/salesforce.yaml``."""

    provider = NAME

    def __init__(self, settings: SalesforceSettings) -> None:
        self._mapping = load_mapping(NAME, _Mapping)
        self._external_id_field = settings.external_id_field

    def upsert(self, change: ContactChange, contact: Contact) -> tuple[str, BaseModel]:
        sobject = self._sobject(contact)
        mapping = self._mapping.objects[sobject]
        record = {
            "attributes": {"type": sobject},
            **mapping.placeholders,
            **apply_fields(contact, mapping.fields),
            self._external_id_field: change.record_id,
            self._mapping.version: str(change.version),
        }
        return change.record_id, SalesforceRecord.model_validate(record)

    def delete(self, change: ContactChange) -> tuple[str, BaseModel]:
        # Look in every mapped SObject: a record written as a Lead stays one after its contact
        # became a customer, so the last known type does not tell where all its copies are.
        return change.record_id, SalesforceRecordRef(sobject_types=tuple(self._mapping.objects))

    def _sobject(self, contact: Contact) -> str:
        rule = self._mapping.sobject_by
        value = getattr(contact, rule.field)
        return rule.default if value is None else rule.values.get(str(value).lower(), rule.default)
