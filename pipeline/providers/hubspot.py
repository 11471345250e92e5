"""HubSpot CRM v3 contacts.

Upserts: ``POST /crm/v3/objects/contacts/batch/upsert`` by the unique property
``settings.id_property`` (200, or 207 with per-input errors); the answer's object id is kept in the
version guard row. Deletes: ``POST .../batch/archive`` (204) by those object ids; for a record whose
id the row does not hold (a row from before ids were kept, a contact created elsewhere), first
``POST .../batch/read`` by the unique property to find it; a contact that is not found is already
gone.

A contact whose email another contact holds is refused (category ``CONFLICT``, "Contact already
exists"): permanent, except for a record that replaces another (``DispatchRecord.replaces``, a
primary-key update), whose old contact's delete is on its way on another partition. Then the
conflict is retried, so the retry tiers bound the wait and the dead-letter topic keeps the change
if the delete never comes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel, TypeAdapter

from pipeline.errors import DeliveryError, MappingError, RetryableError
from pipeline.providers.base import DeliveryResult
from pipeline.providers.credentials import credential
from pipeline.providers.http import Answer, ProviderClient, classify_status, error_body, error_for_status, parse
from pipeline.providers.ledger import Entry, Ledger
from pipeline.providers.mapping import ChangeMapper, FieldMap, MappingFile, apply_fields, load_mapping
from pipeline.settings import HubSpotSettings
from schemas.contact import Contact, ContactChange
from schemas.dispatch import DispatchRecord
from schemas.providers import HubSpotObjectId, HubSpotUpsertInput

NAME = "hubspot"
_BATCH = "/crm/v3/objects/contacts/batch"
_NOT_FOUND = "OBJECT_NOT_FOUND"
_CONFLICT = "CONFLICT"
_THROTTLE_S = 10.0  # the TEN_SECONDLY_ROLLING window, when the answer names no wait
_ARCHIVE_MAX = 100  # inputs of one batch/archive


class _ErrorDetail(Answer):
    context: dict[str, list[str]] = {}


class _StandardError(Answer):
    status: str = ""
    category: str = ""
    message: str = ""
    context: dict[str, list[str]] = {}
    errors: list[_ErrorDetail] = []

    def mentions(self) -> set[str]:
        """Every value named in the error's context: the inputs it concerns, as far as it says."""
        contexts = [self.context, *(detail.context for detail in self.errors)]
        return {value for context in contexts for values in context.values() for value in values}


class _Object(Answer):
    id: str
    properties: dict[str, str | None] = {}


class _Batch(Answer):
    results: list[_Object] = []
    errors: list[_StandardError] = []


class _Error(Answer):
    category: str = ""
    message: str = ""
    policyName: str = ""  # noqa: N815 - HubSpot's wire name


_BATCH_ANSWER = TypeAdapter(_Batch)
_ERROR_ANSWER = TypeAdapter(_Error)


def credentials(settings: HubSpotSettings) -> str:
    """The private app token (ConfigError when it is missing or malformed)."""
    return credential(settings.token, "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN")


class HubSpotProvider:
    """Delivers dispatch records to HubSpot contacts with a private app token."""

    name = NAME

    def __init__(
        self, settings: HubSpotSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._id_property = settings.id_property
        self._http = ProviderClient(
            settings,
            base_url=settings.base_url,
            classify=_classify,
            headers={"Authorization": f"Bearer {credentials(settings)}"},
            transport=transport,
        )

    async def deliver(self, batch: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        ledger = Ledger(batch)
        await ledger.run(ledger.entries("upsert", HubSpotUpsertInput), self._upsert)
        await ledger.run(ledger.entries("delete", HubSpotObjectId), self._delete)
        return ledger.results()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _upsert(self, entries: Sequence[Entry[HubSpotUpsertInput]]) -> list[DeliveryResult]:
        body = {"inputs": [entry.payload.model_dump() for entry in entries]}
        answer = parse(await self._http.request("POST", f"{_BATCH}/upsert", json=body), _BATCH_ANSWER)
        found = _ids_by_value(answer.results, {entry.payload.idProperty for entry in entries})
        blamed = _blame(answer.errors, {entry.payload.id for entry in entries})
        return [
            _outcome(
                entry,
                found.get((entry.payload.idProperty, entry.payload.id)),
                blamed.get(entry.payload.id),
                missing=entry.failed(_unattributed()),
            )
            for entry in entries
        ]

    async def _delete(self, entries: Sequence[Entry[HubSpotObjectId]]) -> list[DeliveryResult]:
        """Archive by the object ids the version guard kept; look up (``batch/read``) only the
        records whose ids it does not know. One archive request per 100 ids."""
        looked_up = [entry for entry in entries if entry.record.provider_ids is None]
        found, results = await self._look_up(looked_up) if looked_up else (set(), {})
        hubspot_ids = set(found)
        for entry in entries:
            if (known := entry.record.provider_ids) is not None:
                hubspot_ids.update(known)
                results[entry.index] = entry.ok(known[0] if known else None, provider_ids=())
        ordered = sorted(hubspot_ids)
        for start in range(0, len(ordered), _ARCHIVE_MAX):
            archive = {"inputs": [{"id": hubspot_id} for hubspot_id in ordered[start : start + _ARCHIVE_MAX]]}
            await self._http.request("POST", f"{_BATCH}/archive", json=archive)
        return [results[entry.index] for entry in entries]

    async def _look_up(
        self, entries: Sequence[Entry[HubSpotObjectId]]
    ) -> tuple[set[str], dict[int, DeliveryResult]]:
        """HubSpot's ids of ``entries``, and what each entry comes to once they are archived."""
        keys = {entry.payload.id for entry in entries}
        body = {
            "idProperty": self._id_property,
            "inputs": [{"id": entry.payload.id} for entry in entries],
            "properties": [self._id_property],
            "propertiesWithHistory": [],
        }
        answer = parse(await self._http.request("POST", f"{_BATCH}/read", json=body), _BATCH_ANSWER)
        found = _ids_by_value(answer.results, {self._id_property})
        failures = [error for error in answer.errors if error.category != _NOT_FOUND]
        blamed = _blame(failures, keys)
        stray = any(not error.mentions() & keys for error in failures)
        results = {
            entry.index: _outcome(
                entry,
                found.get((self._id_property, entry.payload.id)),
                blamed.get(entry.payload.id),
                # Not found (OBJECT_NOT_FOUND, or simply absent) means already deleted, unless an
                # error we cannot attribute might be about this input.
                missing=entry.failed(_unattributed()) if stray else entry.ok(None, provider_ids=()),
                deleted=True,
            )
            for entry in entries
        }
        return set(found.values()), results


def _ids_by_value(results: Iterable[_Object], id_properties: set[str]) -> dict[tuple[str, str], str]:
    """HubSpot's object id by (unique property, its value), read from the answer's properties."""
    found: dict[tuple[str, str], str] = {}
    for result in results:
        for prop in id_properties:
            value = result.properties.get(prop)
            if value is not None:
                found[(prop, value)] = result.id
    return found


def _blame(errors: Iterable[_StandardError], keys: set[str]) -> dict[str, _StandardError]:
    """The error each input is named in (by its id value in the error's context)."""
    blamed: dict[str, _StandardError] = {}
    for error in errors:
        for key in error.mentions() & keys:
            blamed.setdefault(key, error)
    return blamed


def _outcome(
    entry: Entry[HubSpotUpsertInput] | Entry[HubSpotObjectId],
    hubspot_id: str | None,
    error: _StandardError | None,
    *,
    missing: DeliveryResult,
    deleted: bool = False,
) -> DeliveryResult:
    """Found: done (the record lives under ``hubspot_id``, or no longer at all once ``deleted``);
    named in an error: that error; neither: ``missing``."""
    if hubspot_id is not None:
        return entry.ok(hubspot_id, provider_ids=() if deleted else (hubspot_id,))
    if error is not None:
        return entry.failed(_input_error(error, replaces=entry.record.replaces))
    return missing


def _unattributed() -> RetryableError:
    # HubSpot neither returned this input nor named it in an error, so nobody can tell what became
    # of it: it goes round the retry chain (repeating an upsert or an archive is harmless).
    message = "HubSpot answered without a result or an attributable error for this input"
    return RetryableError(message, code="unattributed")


def _input_error(error: _StandardError, *, replaces: str | None) -> DeliveryError:
    """One input's error: by its status when it gives one (5xx retries), else permanent; a
    conflict of a record that ``replaces`` another retries (see the module docstring)."""
    status = int(error.status) if error.status.isdigit() else None
    message = f"HubSpot {error.category}: {error.message}"
    if replaces is not None and error.category == _CONFLICT:
        return RetryableError(f"{message} (record {replaces}, which this one replaces, is not deleted yet)",
                              code=error.category)
    return error_for_status(status, message=message, code=error.category)


def _classify(response: httpx.Response) -> DeliveryError:
    """HubSpot's status and error body as our error; 429 waits by its policy."""
    body = error_body(response, _ERROR_ANSWER, _Error())
    message = f"HubSpot {response.status_code} {body.category}: {body.message}"
    if body.policyName == "DAILY":
        # The daily cap resets at midnight in the account's time zone, which the answer does not
        # give: wait until midnight UTC, and the first retry after it is throttled again if the
        # account is west of UTC.
        wait = seconds_until_midnight_utc(datetime.now(UTC))
    else:
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
        wait = int(interval) / 1000 if interval.isdigit() else _THROTTLE_S
    code = body.policyName or body.category
    return classify_status(response, message=message, code=code, throttle_after=wait)


def seconds_until_midnight_utc(now: datetime) -> float:
    """Seconds from ``now`` (aware) to the next midnight UTC."""
    now = now.astimezone(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


class _Mapping(MappingFile):
    properties: FieldMap
    record_id: str
    version: str


class HubSpotMapper(ChangeMapper):
    """Contact changes to HubSpot batch inputs, from ``pipeline/mappings/hubspot.yaml``."""

    provider = NAME

    def __init__(self, settings: HubSpotSettings) -> None:
        self._mapping = load_mapping(NAME, _Mapping)
        self._id_property = settings.id_property

    def upsert(self, change: ContactChange, contact: Contact) -> tuple[str, BaseModel]:
        properties = self._properties(change, contact)
        key = self._key(properties)
        return key, HubSpotUpsertInput(id=key, idProperty=self._id_property, properties=properties)

    def delete(self, change: ContactChange) -> tuple[str, BaseModel]:
        key = self._key(self._properties(change, change.contact))
        return key, HubSpotObjectId(id=key)

    def _properties(self, change: ContactChange, contact: Contact | None) -> dict[str, str]:
        mapping = self._mapping
        mapped = apply_fields(contact, mapping.properties) if contact is not None else {}
        return mapped | {mapping.record_id: change.record_id, mapping.version: str(change.version)}

    def _key(self, properties: dict[str, str]) -> str:
        key = properties.get(self._id_property)
        if key is None:
            message = f"hubspot: the change has no value for the id property {self._id_property!r}"
            raise MappingError(message, code="no_key")
        return key
