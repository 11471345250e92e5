"""Salesforce REST: OAuth2 token, sObject Collections upsert by external id and delete, lookup query.

The token endpoint lives on the same server, and ``instance_url`` is the simulator's own base URL.
Limits: a rolling 24 h request allocation (403 ``REQUEST_LIMIT_EXCEEDED``); ``Sforce-Limit-Info``
on every answer. Errors outside collections are JSON arrays of ``{message, errorCode, fields}``.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
from typing import Any

from aiohttp import web

from pipeline.dev.simulators import salesforce_objects as objects
from pipeline.dev.simulators import webhook_bodies
from pipeline.dev.simulators.base import ProviderSimulator, RejectedRequest
from pipeline.dev.simulators.config import SalesforceSimConfig
from pipeline.dev.simulators.identifiers import salesforce_id
from pipeline.dev.simulators.notifier import Notification
from pipeline.dev.simulators.rate_window import RollingWindow
from pipeline.dev.simulators.request_log import RecordRef
from pipeline.dev.simulators.salesforce_query import parse_lookup, run_lookup
from pipeline.dev.simulators.store import Operation, RecordStore, StoredRecord

DATA = "/services/data/{version}"
_VERSION = re.compile(r"^v(\d+)\.\d$")
_CODE_BY_STATUS = {400: "INVALID_INPUT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 503: "SERVER_UNAVAILABLE"}
_ORG_ID = "00D000000000001AAA"


class SalesforceSimulator(ProviderSimulator[SalesforceSimConfig]):
    name = "salesforce"

    def __init__(self, config: SalesforceSimConfig) -> None:
        store = RecordStore(objects.EXTERNAL_ID_FIELD, objects.VERSION_FIELD, (objects.EXTERNAL_ID_FIELD,))
        super().__init__(config, store)
        self._daily = RollingWindow(config.daily_limit, 86_400.0)
        self._sessions: dict[str, float] = {}
        self._numbers = itertools.count(1)

    def add_api_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/services/oauth2/token", self.token)
        router.add_patch(DATA + "/composite/sobjects/{sobject}/{field}", self.upsert_collection)
        router.add_delete(DATA + "/composite/sobjects", self.delete_collection)
        router.add_get(DATA + "/query", self.query)

    # --- platform answers ---------------------------------------------------------------------

    def is_exempt(self, request: web.Request) -> bool:
        return request.path == "/services/oauth2/token"

    def authenticate(self, request: web.Request) -> RejectedRequest | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        issued = self._sessions.get(token)
        ttl = self.config.session_ttl_s
        if issued is None or (ttl is not None and time.monotonic() - issued > ttl):
            return RejectedRequest(401, "Session expired or invalid", code="INVALID_SESSION_ID")
        return None

    def admit(self, now: float) -> web.Response | None:
        return None if self._daily.try_admit(now) else self.throttle_response()

    def throttle_response(self) -> web.Response:
        body = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        return web.json_response(body, status=403)

    def error_response(self, rejection: RejectedRequest) -> web.Response:
        code = rejection.code if rejection.code not in ("", "ROUTE", "SERVER_ERROR", "INVALID_JSON") else ""
        if rejection.code == "INVALID_JSON":
            code = "JSON_PARSER_ERROR"
        code = code or _CODE_BY_STATUS.get(rejection.status, "UNKNOWN_EXCEPTION")
        item: dict[str, Any] = {"message": rejection.message, "errorCode": code}
        item.update(rejection.extra)
        headers = {"WWW-Authenticate": "Token"} if rejection.status == 401 else None
        return web.json_response([item], status=rejection.status, headers=headers)

    def limit_headers(self, now: float) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self._daily.used(now)}/{self._daily.limit}"}

    def notifications(self, record: StoredRecord, operation: Operation, changed: dict[str, Any]) -> list[Notification]:
        return webhook_bodies.salesforce_outbound_message(record, operation, self.config.organization_id)

    def on_reconfigure(self) -> None:
        self._daily.reconfigure(self.config.daily_limit)

    def on_reset(self) -> None:
        """Records, log and usage go; issued sessions stay valid, as an org's would."""
        self._daily.reset()

    # --- endpoints ----------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant, config = form.get("grant_type"), self.config
        if grant not in ("password", "client_credentials"):
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if form.get("client_id") != config.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if form.get("client_secret") != config.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        user = (form.get("username"), form.get("password"))
        if grant == "password" and user != (config.username, config.password):
            return _oauth_error("invalid_grant", "authentication failure")
        access_token = f"{_ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        self._sessions[access_token] = time.monotonic()
        issued_at = str(int(time.time() * 1000))
        answer = {
            "access_token": access_token,
            "instance_url": self.base_url,
            "id": f"{self.base_url}/id/{_ORG_ID}/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        return web.json_response(answer)

    async def upsert_collection(self, request: web.Request) -> web.Response:
        sobject = self._sobject(request)
        if request.match_info["field"] != objects.EXTERNAL_ID_FIELD:
            raise RejectedRequest(404, "The requested resource does not exist", code="NOT_FOUND")
        body = await self.json_body(request)
        records = objects.check_collection(sobject, body, self.config.max_collection_records)
        keys = [record.get(objects.EXTERNAL_ID_FIELD) for record in records]
        refs = [RecordRef.of(k, r.get(objects.VERSION_FIELD)) for k, r in zip(keys, records, strict=True)]
        self.note_records(request, refs)
        existing = [self.store.find_live(objects.EXTERNAL_ID_FIELD, key, sobject) for key in keys]
        results = [self._upsert_verdict(sobject, r, e) for r, e in zip(records, existing, strict=True)]
        objects.fail_duplicate_keys(records, results)
        results = objects.settle(results, all_or_none=body.get("allOrNone", False))
        seq, now = self.request_seq(request), time.time()
        for record, target, result in zip(records, existing, results, strict=True):
            if result["success"]:
                fields = {name: value for name, value in record.items() if name != "attributes"}
                native_id = target.native_id if target else self._new_id(sobject)
                stored, created = self.store.write(native_id, fields, at=now, request_seq=seq, object_type=sobject)
                result.update(id=stored.native_id, created=created)
        return self._collection_answer(request, results)

    async def delete_collection(self, request: web.Request) -> web.Response:
        self._api_version(request)
        ids = [value for value in request.query.get("ids", "").split(",") if value]
        if not ids:
            raise RejectedRequest(400, "ids: required parameter missing", code="MISSING_ARGUMENT")
        objects.check_collection_size(len(ids), self.config.max_collection_records)
        records = [objects.record_by_id(self.store, value) for value in ids]
        self.note_records(request, [self.ref(record) for record in records if record is not None])
        results = [self._delete_verdict(value, record) for value, record in zip(ids, records, strict=True)]
        results = objects.settle(results, all_or_none=request.query.get("allOrNone", "false").lower() == "true")
        for record, result in zip(records, results, strict=True):
            if result["success"] and record is not None:
                self.store.archive(record.native_id, at=time.time(), request_seq=self.request_seq(request))
        return self._collection_answer(request, results)

    async def query(self, request: web.Request) -> web.Response:
        version = self._api_version(request)
        lookup = parse_lookup(request.query.get("q", ""))
        if lookup.where_field == objects.EXTERNAL_ID_FIELD:
            self.note_records(request, [RecordRef(value, None) for value in lookup.values])
        rows = run_lookup(self.store, lookup, version)
        return web.json_response({"totalSize": len(rows), "done": True, "records": rows})

    # --- helpers ------------------------------------------------------------------------------

    def _api_version(self, request: web.Request) -> str:
        """The URI's ``vXX.X``; collections upsert needs v46.0 or later."""
        version = request.match_info["version"]
        match = _VERSION.match(version)
        if match is None or int(match[1]) < 46:
            raise RejectedRequest(404, "The requested resource does not exist", code="NOT_FOUND")
        return version

    def _sobject(self, request: web.Request) -> str:
        self._api_version(request)
        sobject = request.match_info["sobject"]
        if sobject not in objects.FIELDS:
            raise RejectedRequest(404, "The requested resource does not exist", code="NOT_FOUND")
        return sobject

    def _new_id(self, sobject: str) -> str:
        return salesforce_id(objects.ID_PREFIX[sobject], next(self._numbers))

    def _upsert_verdict(
        self, sobject: str, record: dict[str, Any], existing: StoredRecord | None
    ) -> dict[str, Any]:
        errors = objects.record_errors(sobject, record, existing)
        if errors:
            return objects.failure(errors)
        native_id = existing.native_id if existing else None
        return self._unless_injected_failure(objects.success(native_id), native_id)

    def _delete_verdict(self, value: str, record: StoredRecord | None) -> dict[str, Any]:
        errors = objects.delete_errors(value, record)
        if errors or record is None:
            return objects.failure(errors)
        return self._unless_injected_failure(objects.success(record.native_id), record.native_id)

    def _unless_injected_failure(self, result: dict[str, Any], native_id: str | None) -> dict[str, Any]:
        if self.faults.failing_records(1)[0]:
            return objects.injected_failure(self.config.faults.partial_failure_kind, native_id)
        return result

    def _collection_answer(self, request: web.Request, results: list[dict[str, Any]]) -> web.Response:
        if not all(result["success"] for result in results):
            self.note_partial_failure(request)
        return web.json_response(results)


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)
