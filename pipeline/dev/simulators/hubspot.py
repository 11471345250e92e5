"""HubSpot CRM v3 contacts: batch upsert, read and archive, as a private app sees them.

Auth is ``Authorization: Bearer <token>``. Limits: a rolling ten-second window and a daily cap,
both answered with HubSpot's 429 bodies; ``X-HubSpot-RateLimit-*`` headers on every answer.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from pipeline.dev.simulators import hubspot_contacts as contacts
from pipeline.dev.simulators import webhook_bodies
from pipeline.dev.simulators.base import ProviderSimulator, RejectedRequest
from pipeline.dev.simulators.config import HubSpotSimConfig
from pipeline.dev.simulators.identifiers import correlation_id
from pipeline.dev.simulators.notifier import Notification
from pipeline.dev.simulators.rate_window import RollingWindow
from pipeline.dev.simulators.request_log import RecordRef
from pipeline.dev.simulators.specs import HUBSPOT_SPEC, schema_problems
from pipeline.dev.simulators.store import Operation, RecordStore, StoredRecord

BATCH = "/crm/v3/objects/contacts/batch"
_CATEGORIES = frozenset({"VALIDATION_ERROR", "CONFLICT", "OBJECT_NOT_FOUND", "INVALID_AUTHENTICATION"})
_CATEGORY_BY_STATUS = {401: "INVALID_AUTHENTICATION", 404: "OBJECT_NOT_FOUND"}


class HubSpotSimulator(ProviderSimulator[HubSpotSimConfig]):
    name = "hubspot"

    def __init__(self, config: HubSpotSimConfig) -> None:
        super().__init__(config, RecordStore("contactsync_id", "contactsync_version", contacts.UNIQUE_PROPERTIES))
        self._ten_seconds = RollingWindow(config.requests_per_10s, 10.0)
        self._daily = RollingWindow(config.daily_limit, 86_400.0)
        self._next_id = 1001

    def add_api_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{BATCH}/upsert", self.batch_upsert)
        router.add_post(f"{BATCH}/read", self.batch_read)
        router.add_post(f"{BATCH}/archive", self.batch_archive)

    # --- platform answers ---------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> RejectedRequest | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return RejectedRequest(401, "Authentication credentials not found. This API supports OAuth 2.0.")
        if header.removeprefix("Bearer ") != self.config.token:
            return RejectedRequest(401, "The access token provided is invalid or expired.")
        return None

    def admit(self, now: float) -> web.Response | None:
        if self._daily.remaining(now) == 0:
            return _rate_limited("daily", "DAILY")
        if not self._ten_seconds.try_admit(now):
            return self.throttle_response()
        self._daily.try_admit(now)
        return None

    def throttle_response(self) -> web.Response:
        return _rate_limited("ten_secondly_rolling", "TEN_SECONDLY_ROLLING")

    def error_response(self, rejection: RejectedRequest) -> web.Response:
        category = rejection.code if rejection.code in _CATEGORIES else "VALIDATION_ERROR"
        if rejection.status >= 500:
            category = "INTERNAL_ERROR"
        elif rejection.status in _CATEGORY_BY_STATUS:
            category = _CATEGORY_BY_STATUS[rejection.status]
        body = {"status": "error", "message": rejection.message, "correlationId": correlation_id()}
        return web.json_response({**body, "category": category, **rejection.extra}, status=rejection.status)

    def limit_headers(self, now: float) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self._ten_seconds.limit),
            "X-HubSpot-RateLimit-Remaining": str(self._ten_seconds.remaining(now)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Daily": str(self._daily.limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self._daily.remaining(now)),
        }

    def notifications(self, record: StoredRecord, operation: Operation, changed: dict[str, Any]) -> list[Notification]:
        return webhook_bodies.hubspot_events(record, operation, changed)

    def webhook_headers(self, url: str, body: bytes) -> dict[str, str]:
        return webhook_bodies.hubspot_signature(self.config.client_secret, url, body)

    def on_reconfigure(self) -> None:
        self._ten_seconds.reconfigure(self.config.requests_per_10s)
        self._daily.reconfigure(self.config.daily_limit)

    def on_reset(self) -> None:
        self._ten_seconds.reset()
        self._daily.reset()

    # --- endpoints ----------------------------------------------------------------------------

    async def batch_upsert(self, request: web.Request) -> web.Response:
        started = time.time()
        inputs = await self._batch_inputs(request, "BatchInputSimplePublicObjectBatchInputUpsert")
        self.note_records(request, [_upsert_ref(item) for item in inputs])
        contacts.check_upsert_inputs(inputs)
        targets = self._resolve_upsert_targets(inputs)
        results, errors = [], []
        seq = self.request_seq(request)
        failing = self.faults.failing_records(len(inputs))
        for item, target, fails in zip(inputs, targets, failing, strict=True):
            conflict = self._email_conflict(item, target)
            if conflict is not None:
                errors.append(contacts.input_error("CONFLICT", conflict, [item["id"]]))
                continue
            if fails:
                errors.append(contacts.injected_failure(self.config.faults.partial_failure_kind, item["id"]))
                continue
            fields = {**item["properties"], item["idProperty"]: item["id"]}
            record, created = self.store.write(target or self._new_id(), fields, at=time.time(), request_seq=seq)
            results.append({**contacts.contact_json(record), "new": created})
        return self._batch_answer(request, results, errors, started)

    async def batch_read(self, request: web.Request) -> web.Response:
        started = time.time()
        body = await self._validated(request, "BatchReadInputSimplePublicObjectId")
        id_property = body.get("idProperty")
        contacts.check_id_property(id_property)
        archived = request.query.get("archived", "false").lower() == "true"
        ids = [item["id"] for item in body["inputs"]]
        self._check_batch_size(ids)
        found = {key: self._lookup(id_property, key, archived=archived) for key in ids}
        self.note_records(request, [self.ref(record) for record in found.values() if record is not None])
        names = list(body["properties"]) or list(contacts.DEFAULT_READ_PROPERTIES)
        names += [id_property] if id_property else []
        results = [contacts.contact_json(record, names) for record in found.values() if record is not None]
        missing = [key for key, record in found.items() if record is None]
        message = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
        errors = [contacts.input_error("OBJECT_NOT_FOUND", message, missing)] if missing else []
        return self._batch_answer(request, results, errors, started)

    async def batch_archive(self, request: web.Request) -> web.Response:
        inputs = await self._batch_inputs(request, "BatchInputSimplePublicObjectId")
        records = [self.store.get(item["id"]) for item in inputs]
        self.note_records(request, [self.ref(record) for record in records if record is not None])
        for item in inputs:
            self.store.archive(item["id"], at=time.time(), request_seq=self.request_seq(request))
        return web.Response(status=204)

    # --- helpers ------------------------------------------------------------------------------

    async def _validated(self, request: web.Request, component: str) -> dict[str, Any]:
        body = await self.json_body(request)
        problems = schema_problems(HUBSPOT_SPEC, component, body)
        if problems:
            raise RejectedRequest(400, f"Invalid input JSON: {'; '.join(problems)}", code="VALIDATION_ERROR")
        assert isinstance(body, dict)
        return body

    async def _batch_inputs(self, request: web.Request, component: str) -> list[dict[str, Any]]:
        inputs: list[dict[str, Any]] = (await self._validated(request, component))["inputs"]
        self._check_batch_size(inputs)
        return inputs

    def _batch_answer(
        self, request: web.Request, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: float
    ) -> web.Response:
        if errors:
            self.note_partial_failure(request)
        status, body = contacts.batch_answer(results, errors, started)
        return web.json_response(body, status=status)

    def _check_batch_size(self, inputs: list[Any]) -> None:
        limit = self.config.max_batch_inputs
        if len(inputs) > limit:
            message = f"Batch input limit exceeded: {len(inputs)} inputs, at most {limit} allowed."
            raise RejectedRequest(400, message)

    def _resolve_upsert_targets(self, inputs: list[dict[str, Any]]) -> list[str | None]:
        """The live contact each input updates (None: creates one); 400 if two inputs meet."""
        targets, seen, duplicates = [], set(), []
        for item in inputs:
            record = self.store.find_live(item["idProperty"], item["id"])
            key = record.native_id if record else f"{item['idProperty']}={item['id'].lower()}"
            if key in seen:
                duplicates.append(item["id"])
            seen.add(key)
            targets.append(record.native_id if record else None)
        if duplicates:
            raise RejectedRequest(400, f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        return targets

    def _email_conflict(self, item: dict[str, Any], target: str | None) -> str | None:
        """The CONFLICT message when the input's email belongs to another live contact."""
        email = item["properties"].get("email") if item["idProperty"] != "email" else None
        owner = self.store.find_live("email", email) if email else None
        if owner is None or owner.native_id == target:
            return None
        return f"Contact already exists. Existing ID: {owner.native_id}"

    def _lookup(self, id_property: str | None, key: str, *, archived: bool) -> StoredRecord | None:
        if id_property is None:
            record = self.store.get(key)
        elif not archived:
            record = self.store.find_live(id_property, key)
        else:
            record = self.store.find_archived(id_property, key)
        return record if record is not None and record.archived == archived else None

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)


def _upsert_ref(item: dict[str, Any]) -> RecordRef:
    properties = item["properties"]
    record_id = item["id"] if item.get("idProperty") == "contactsync_id" else properties.get("contactsync_id")
    return RecordRef.of(record_id, properties.get("contactsync_version"))


def _rate_limited(limit_name: str, policy: str) -> web.Response:
    body = {
        "status": "error",
        "message": f"You have reached your {limit_name} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
    }
    return web.json_response(body, status=429)
