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
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from pipeline.simulators import salesforce_objects as objects
from pipeline.simulators.base import ProviderSimulator, RejectedRequest
from pipeline.simulators.config import SalesforceSimConfig
from pipeline.simulators.identifiers import is_salesforce_id, salesforce_id, salesforce_id_18
from pipeline.simulators.rate_window import RollingWindow
from pipeline.simulators.request_log import RecordRef
from pipeline.simulators.soql import parse_lookup
from pipeline.simulators.store import RecordStore, StoredRecord

DATA = "/services/data/{version}"
_VERSION = re.compile(r"^v(\d+)\.\d$")
_CODE_BY_STATUS = {400: "INVALID_INPUT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 503: "SERVER_UNAVAILABLE"}
_ORG_ID = "00D000000000001AAA"


class SalesforceSimulator(ProviderSimulator[SalesforceSimConfig]):
    name = "salesforce"

    def __init__(self, config: SalesforceSimConfig) -> None:
        super().__init__(config, RecordStore(objects.EXTERNAL_ID_FIELD, objects.VERSION_FIELD, (objects.EXTERNAL_ID_FIELD,)))
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
        return web.json_response([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}], status=403)

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
        if grant == "password" and (form.get("username"), form.get("password")) != (config.username, config.password):
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
        sobject, field = self._sobject(request), request.match_info["field"]
        if field != objects.EXTERNAL_ID_FIELD:
            raise RejectedRequest(404, "The requested resource does not exist", code="NOT_FOUND")
        body = await self.json_body(request)
        records = objects.check_collection(sobject, body, self.config.max_collection_records)
        self.note_records(request, [RecordRef.of(r.get(field), r.get(objects.VERSION_FIELD)) for r in records])
        existing = [self.store.find_live(field, record.get(field), sobject) for record in records]
        results = [self._upsert_verdict(sobject, r, e) for r, e in zip(records, existing, strict=True)]
        self._fail_duplicate_keys(records, results)
        results = self._apply(results, all_or_none=body.get("allOrNone", False))
        seq, now = self.request_seq(request), time.time()
        for record, target, result in zip(records, existing, results, strict=True):
            if result["success"]:
                fields = {name: value for name, value in record.items() if name != "attributes"}
                native_id = target.native_id if target else salesforce_id(objects.ID_PREFIX[sobject], next(self._numbers))
                stored, created = self.store.write(native_id, fields, at=now, request_seq=seq, object_type=sobject)
                result.update(id=stored.native_id, created=created)
        return self._collection_answer(request, results)

    async def delete_collection(self, request: web.Request) -> web.Response:
        self._api_version(request)
        ids = [value for value in request.query.get("ids", "").split(",") if value]
        if not ids:
            raise RejectedRequest(400, "ids: required parameter missing", code="MISSING_ARGUMENT")
        if len(ids) > self.config.max_collection_records:
            raise RejectedRequest(400, "record limit reached. cannot submit more than 200 records into this call", code="EXCEEDED_ID_LIMIT")
        records = [self._by_id(value) for value in ids]
        self.note_records(request, [self.ref(record) for record in records if record is not None])
        results = [self._delete_verdict(value, record) for value, record in zip(ids, records, strict=True)]
        results = self._apply(results, all_or_none=request.query.get("allOrNone", "false").lower() == "true")
        for record, result in zip(records, results, strict=True):
            if result["success"] and record is not None:
                self.store.archive(record.native_id, at=time.time(), request_seq=self.request_seq(request))
        return self._collection_answer(request, results)

    async def query(self, request: web.Request) -> web.Response:
        version = self._api_version(request)
        lookup = parse_lookup(request.query.get("q", ""))
        sobject = _canonical(lookup.sobject, objects.FIELDS)
        if sobject is None:
            raise RejectedRequest(400, f"sObject type '{lookup.sobject}' is not supported.", code="INVALID_TYPE")
        known = {*objects.FIELDS[sobject], "Id"}
        names = [_canonical(name, known) or _no_such_column(name, sobject) for name in (*lookup.fields, lookup.where_field)]
        where = names.pop()
        self.note_records(request, [RecordRef(value, None) for value in lookup.values] if where == objects.EXTERNAL_ID_FIELD else [])
        matches = {record.native_id: record for value in lookup.values for record in self._matching(sobject, where, value)}
        rows = [_row(version, sobject, record, names) for record in matches.values()]
        return web.json_response({"totalSize": len(rows), "done": True, "records": rows})

    # --- helpers ------------------------------------------------------------------------------

    def _api_version(self, request: web.Request) -> str:
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

    def _upsert_verdict(self, sobject: str, record: dict[str, Any], existing: StoredRecord | None) -> dict[str, Any]:
        errors = objects.record_errors(sobject, record, existing)
        if errors:
            return objects.failure(errors)
        if self.faults.failing_records(1)[0]:
            return objects.injected_failure(self.config.faults.partial_failure_kind, existing.native_id if existing else None)
        return {"id": None, "success": True, "errors": []}

    def _delete_verdict(self, value: str, record: StoredRecord | None) -> dict[str, Any]:
        if not is_salesforce_id(value) or value[:3] not in objects.OBJECT_BY_PREFIX:
            return objects.failure([objects.error_item("MALFORMED_ID", f"malformed id {value}")])
        if record is None:
            return objects.failure([objects.error_item("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")])
        if record.archived:
            return objects.failure([objects.error_item("ENTITY_IS_DELETED", "entity is deleted")])
        if self.faults.failing_records(1)[0]:
            return objects.injected_failure(self.config.faults.partial_failure_kind, record.native_id)
        return {"id": record.native_id, "success": True, "errors": []}

    def _collection_answer(self, request: web.Request, results: list[dict[str, Any]]) -> web.Response:
        if not all(result["success"] for result in results):
            self.note_partial_failure(request)
        return web.json_response(results)

    @staticmethod
    def _fail_duplicate_keys(records: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        keys = [str(record.get(objects.EXTERNAL_ID_FIELD, "")).lower() for record in records]
        for position, key in enumerate(keys):
            if key and keys.count(key) > 1:
                message = f"Duplicate external id specified: {records[position][objects.EXTERNAL_ID_FIELD]}"
                results[position] = objects.failure([objects.error_item("DUPLICATE_VALUE", message, [objects.EXTERNAL_ID_FIELD])])

    @staticmethod
    def _apply(results: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]:
        if all_or_none and not all(result["success"] for result in results):
            return objects.roll_back(results)
        return results

    def _by_id(self, value: str) -> StoredRecord | None:
        return self.store.get(salesforce_id_18(value)) if is_salesforce_id(value) else None

    def _matching(self, sobject: str, field: str, value: str) -> list[StoredRecord]:
        if field == "Id":
            record = self._by_id(value)
            candidates = [record] if record is not None and record.object_type == sobject else []
        else:
            candidates = self.store.scan(field, value, sobject)
        return [record for record in candidates if not record.archived]


def _canonical(name: str, known: Iterable[str]) -> str | None:
    """SOQL names are case-insensitive: the catalog's spelling of ``name``, if it has one."""
    return next((key for key in known if key.lower() == name.lower()), None)


def _no_such_column(name: str, sobject: str) -> str:
    raise RejectedRequest(400, f"No such column '{name}' on entity '{sobject}'.", code="INVALID_FIELD")


def _row(version: str, sobject: str, record: StoredRecord, names: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"attributes": {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{record.native_id}"}}
    for name in names:
        row[name] = record.native_id if name == "Id" else record.fields.get(name)
    return row


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)
