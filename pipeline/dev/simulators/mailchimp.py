"""Mailchimp Marketing API 3.0: batch subscribe and member PUT, PATCH, GET, DELETE on one audience,
and batch operations of those calls.

Base URL ``http://host:port/3.0``. Auth is HTTP basic with any user name and the API key as
password. More than ``max_connections`` requests in flight at once: 429. A PATCH that changes the
address moves the member: the old hash is archived, the new one created with the member's data. Errors are
``application/problem+json``; per-member failures of a batch come in a 200 body's ``errors``.

``POST /batches`` takes operations of the calls above (validated like the direct requests), runs
them later (in the order posted, or last first with ``batch_operations_reversed``) through the same
handlers and logs the records they carried on the POST's log entry; ``GET /batches`` lists the
batches (``fields``, ``count``, ``offset``); a finished batch's results are served, without auth and
outside the API's log and limits, at its ``response_body_url``
(``/batch-results/{id}.tar.gz``, like Mailchimp's storage URL). See ``mailchimp_batches``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pipeline.dev.simulators import mailchimp_batches as batches
from pipeline.dev.simulators import mailchimp_members as members
from pipeline.dev.simulators import webhook_bodies
from pipeline.dev.simulators.base import LOG_ENTRY, Handler, ProviderSimulator, RejectedRequest
from pipeline.dev.simulators.config import MailchimpSimConfig
from pipeline.dev.simulators.identifiers import correlation_id, subscriber_hash
from pipeline.dev.simulators.notifier import Notification
from pipeline.dev.simulators.rate_window import RollingWindow
from pipeline.dev.simulators.request_log import RecordRef
from pipeline.dev.simulators.specs import MAILCHIMP_SPEC, schema_problems
from pipeline.dev.simulators.store import Operation, RecordStore, StoredRecord

_TITLES = {400: "Invalid Resource", 401: "API Key Invalid", 404: "Resource Not Found", 405: "Method Not Allowed"}
_INVALID = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
_MEMBER = "/lists/{list_id}/members/{member}"
_RESULTS = "/batch-results/"


@dataclass
class _Call:
    """One call on the audience: a direct request, or one operation of a batch. A handler notes
    the records the call carried in ``records``, and a 2xx answer that failed some in ``partial``."""

    path: Mapping[str, str]  # the route's parts: list_id, member
    body: Any
    query: Mapping[str, str]
    seq: int  # the request whose write this is (a batch's operations: the POST /batches)
    records: list[RecordRef] = field(default_factory=list)
    partial: bool = False


@dataclass(frozen=True)
class _Route:
    method: str
    path: str  # under /3.0
    handle: Callable[[_Call], web.Response]
    component: str | None  # the spec's schema of the body, if it has one


class MailchimpSimulator(ProviderSimulator[MailchimpSimConfig]):
    name = "mailchimp"
    api_prefix = "/3.0"

    def __init__(self, config: MailchimpSimConfig) -> None:
        super().__init__(config, RecordStore(members.RECORD_ID_TAG, members.VERSION_TAG, ()))
        self._per_second = RollingWindow(config.requests_per_second or 1, 1.0)
        self._batches = batches.Batches()
        self._routes = [
            _Route("POST", "/lists/{list_id}", self.batch_subscribe, "MembersToSubscribeUnsubscribeTofromAListInBatch"),
            _Route("PUT", _MEMBER, self.put_member, "AddListMembers2"),
            _Route("PATCH", _MEMBER, self.patch_member, "AddListMembers3"),
            _Route("GET", _MEMBER, self.get_member, None),
            _Route("DELETE", _MEMBER, self.delete_member, None),
        ]

    def add_api_routes(self, router: web.UrlDispatcher) -> None:
        for route in self._routes:
            router.add_route(route.method, f"{self.api_prefix}{route.path}", self._endpoint(route))
        router.add_post(f"{self.api_prefix}/batches", self.start_batch)
        router.add_get(f"{self.api_prefix}/batches", self.list_batches)
        router.add_get(f"{_RESULTS}{{name}}", self.batch_results)

    def outside_api(self, request: web.Request) -> bool:
        return request.path.startswith(_RESULTS)

    # --- platform answers ---------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> RejectedRequest | None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            _user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        if scheme.lower() != "basic" or password != self.config.api_key:
            detail = "Your API key may be invalid, or you've attempted to access the wrong datacenter."
            return RejectedRequest(401, detail)
        return None

    def max_in_flight(self) -> int | None:
        return self.config.max_connections

    def admit(self, now: float) -> web.Response | None:
        if self.config.requests_per_second is None or self._per_second.try_admit(now):
            return None
        detail = f"You have exceeded the limit of {self._per_second.limit} requests per second."
        return _problem(429, "Too Many Requests", detail)

    def throttle_response(self) -> web.Response:
        detail = f"You have exceeded the limit of {self.config.max_connections} simultaneous connections."
        return _problem(429, "Too Many Requests", detail)

    def error_response(self, rejection: RejectedRequest) -> web.Response:
        """A problem document; a handler's ``code`` is the problem title (like "Member Exists")."""
        fallback = "Internal Server Error" if rejection.status >= 500 else "Bad Request"
        title = _TITLES.get(rejection.status, fallback)
        if rejection.code == "INVALID_JSON":
            title = "JSON Parse Exception"
        elif rejection.code not in ("", "ROUTE", "SERVER_ERROR"):
            title = rejection.code
        return _problem(rejection.status, title, rejection.message, rejection.extra)

    def notifications(self, record: StoredRecord, operation: Operation, changed: dict[str, Any]) -> list[Notification]:
        return webhook_bodies.mailchimp_event(record, operation, changed, self.config.list_id)

    def on_reconfigure(self) -> None:
        self._per_second.reconfigure(self.config.requests_per_second or 1)

    def on_reset(self) -> None:
        self._per_second.reset()
        self._batches.reset()

    # --- endpoints ----------------------------------------------------------------------------

    def batch_subscribe(self, call: _Call) -> web.Response:
        list_id = self._list_id(call)
        body = call.body
        batch: list[dict[str, Any]] = body["members"]
        if len(batch) > self.config.max_batch_members:
            limit = self.config.max_batch_members
            raise RejectedRequest(400, f"Batch subscribe takes at most {limit} members; got {len(batch)}.")
        call.records = [_ref(member) for member in batch]
        check_duplicates = call.query.get("skip_duplicate_check", "false").lower() != "true"
        answer: dict[str, list[Any]] = {"new_members": [], "updated_members": [], "errors": []}
        seen: set[str] = set()
        for member, fails in zip(batch, self.faults.failing_records(len(batch)), strict=True):
            email = member.get("email_address") or ""
            error = self._batch_member_error(member, body, seen if check_duplicates else set())
            seen.add(email.lower())
            if error is None and fails:
                error = members.injected_error(email, self.config.faults.partial_failure_kind)
            if error is not None:
                answer["errors"].append(error)
                continue
            record, created = self._write(call, member, member.get("status"))
            answer["new_members" if created else "updated_members"].append(self._json(record, list_id))
        call.partial = bool(answer["errors"])
        counts = {"total_created": len(answer["new_members"]), "total_updated": len(answer["updated_members"])}
        return web.json_response({**answer, **counts, "error_count": len(answer["errors"]), "_links": []})

    def put_member(self, call: _Call) -> web.Response:
        list_id = self._list_id(call)
        body = call.body
        call.records = [_ref(body)]
        self._check_member_data(body)
        if _native_id(call.path["member"]) != subscriber_hash(body["email_address"]):
            mismatch = {"field": "email_address", "message": "The address does not match the subscriber hash."}
            raise RejectedRequest(400, _INVALID, extra={"errors": [mismatch]})
        existing = self._live(_native_id(call.path["member"]))
        status = body.get("status") or (existing.fields["status"] if existing else body["status_if_new"])
        record, _ = self._write(call, body, status)
        return web.json_response(self._json(record, list_id))

    def patch_member(self, call: _Call) -> web.Response:
        """Update a member; a new ``email_address`` moves it to that address's hash."""
        list_id = self._list_id(call)
        body = call.body
        current = self._live(_native_id(call.path["member"]))
        if current is None:
            raise RejectedRequest(404, "The requested resource could not be found.")
        call.records = [self.ref(current)]
        email = body.get("email_address") or current.fields["email_address"]
        self._check_member_data({**body, "email_address": email})
        target = subscriber_hash(email)
        if target != current.native_id and self._live(target) is not None:
            detail = f"{email} is already a list member. Use PUT to insert or update list members."
            raise RejectedRequest(400, detail, code="Member Exists")
        status = body.get("status") or current.fields["status"]
        changes = members.stored_fields({**body, "email_address": email}, status)
        seq = call.seq
        if target != current.native_id:
            changes = {**current.fields, **changes}
            self.store.archive(current.native_id, at=time.time(), request_seq=seq)
        record, _ = self.store.write(target, changes, at=time.time(), request_seq=seq)
        return web.json_response(self._json(record, list_id))

    def get_member(self, call: _Call) -> web.Response:
        list_id = self._list_id(call)
        record = self.store.get(_native_id(call.path["member"]))
        if record is None:
            raise RejectedRequest(404, "The requested resource could not be found.")
        call.records = [self.ref(record)]
        return web.json_response(self._json(record, list_id))

    def delete_member(self, call: _Call) -> web.Response:
        self._list_id(call)
        record = self._live(_native_id(call.path["member"]))
        if record is None:
            raise RejectedRequest(404, "The requested resource could not be found.")
        call.records = [self.ref(record)]
        self.store.archive(record.native_id, at=time.time(), request_seq=call.seq)
        return web.Response(status=204)

    # --- batch operations ---------------------------------------------------------------------

    async def start_batch(self, request: web.Request) -> web.Response:
        """Validate the operations, answer ``pending`` and run them ``batch_delay_s`` later."""
        operations: list[dict[str, Any]] = self._validated(await self.json_body(request), "BatchesBody")["operations"]
        entry = request[LOG_ENTRY]
        entry.operations = dict(Counter(operation["method"] for operation in operations))

        def run(operation: dict[str, Any]) -> tuple[int, str]:
            response, records = self._operation(operation, entry.seq)
            entry.records.extend(records)
            return response.status, response.text or ""

        last_first = self.config.batch_operations_reversed
        batch = self._batches.start(operations, run, self.config.batch_delay_s, last_first=last_first)
        return web.json_response(batch.as_json(self._results_url(batch.id)))

    async def list_batches(self, request: web.Request) -> web.Response:
        offset, count = int(request.query.get("offset", 0)), min(1000, int(request.query.get("count", 10)))
        listed = self._batches.newest_first()
        page = [batch.as_json(self._results_url(batch.id)) for batch in listed[offset : offset + count]]
        document = {"batches": page, "total_items": len(listed), "_links": []}
        return web.json_response(batches.sparse(document, request.query.get("fields", "")))

    async def batch_results(self, request: web.Request) -> web.Response:
        archive = self._batches.archive(request.match_info["name"].removesuffix(".tar.gz"))
        if archive is None:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(body=archive, content_type="application/x-gzip")

    def _operation(self, operation: dict[str, Any], seq: int) -> tuple[web.Response, list[RecordRef]]:
        """One operation of a batch, answered by the handler its method and path name."""
        for route in self._routes:
            path = batches.matches(route.path, operation["path"])
            if route.method == operation["method"] and path is not None:
                call = _Call(path, None, {k: str(v) for k, v in (operation.get("params") or {}).items()}, seq)
                try:
                    if route.component is not None:
                        call.body = self._validated(_json_or_none(operation.get("body")), route.component)
                    return route.handle(call), call.records
                except RejectedRequest as rejection:
                    return self.error_response(rejection), call.records
        unknown = RejectedRequest(404, f"No {operation['method']} {operation['path']} in this API.")
        return self.error_response(unknown), []

    def _results_url(self, batch_id: str) -> str:
        return f"{self.base_url.removesuffix(self.api_prefix)}{_RESULTS}{batch_id}.tar.gz"

    # --- helpers ------------------------------------------------------------------------------

    def _endpoint(self, route: _Route) -> Handler:
        """The direct request of ``route``: its body validated, its call handled, its records logged."""

        async def handle(request: web.Request) -> web.Response:
            call = _Call(request.match_info, None, request.query, self.request_seq(request))
            try:
                if route.component is not None:
                    call.body = self._validated(await self.json_body(request), route.component)
                return route.handle(call)
            finally:
                self.note_records(request, call.records)
                if call.partial:
                    self.note_partial_failure(request)

        return handle

    def _list_id(self, call: _Call) -> str:
        list_id = call.path["list_id"]
        if list_id != self.config.list_id:
            raise RejectedRequest(404, "The requested resource could not be found.")
        return list_id

    def _validated(self, body: Any, component: str) -> dict[str, Any]:
        problems = schema_problems(MAILCHIMP_SPEC, component, body)
        if problems:
            errors = [{"field": line.split(": ", 1)[0], "message": line.split(": ", 1)[1]} for line in problems]
            raise RejectedRequest(400, _INVALID, extra={"errors": errors})
        assert isinstance(body, dict)
        return body

    def _check_member_data(self, member: dict[str, Any]) -> None:
        problem = members.member_problem(member, self.config.merge_fields)
        if problem is not None:
            field, error, message = problem
            raise RejectedRequest(400, error, extra={"errors": [{"field": field, "message": message}]})

    def _batch_member_error(
        self, member: dict[str, Any], body: dict[str, Any], seen: set[str]
    ) -> dict[str, Any] | None:
        email = member.get("email_address") or ""
        problem = members.member_problem(member, self.config.merge_fields)
        if problem is not None:
            field, error, message = problem
            return members.batch_error(email, error, field=field, field_message=message)
        if email.lower() in seen:
            error = "This email address is listed more than once in this request."
            return members.batch_error(email, error, field="email_address")
        existing = self._live(subscriber_hash(email))
        if existing is not None and not body.get("update_existing", False):
            error = f"{email} is already a list member. Use PUT to insert or update list members."
            return members.batch_error(email, error, code="ERROR_CONTACT_EXISTS")
        if existing is None and not member.get("status"):
            return members.batch_error(email, "A status is required for new members.", field="status")
        return None

    def _write(self, call: _Call, member: dict[str, Any], status: str | None) -> tuple[StoredRecord, bool]:
        native_id = subscriber_hash(member["email_address"])
        current = self._live(native_id)
        fields = members.stored_fields(member, status or (current.fields["status"] if current else "subscribed"))
        return self.store.write(native_id, fields, at=time.time(), request_seq=call.seq)

    def _live(self, native_id: str) -> StoredRecord | None:
        record = self.store.get(native_id)
        return record if record is not None and not record.archived else None

    def _json(self, record: StoredRecord, list_id: str) -> dict[str, Any]:
        return members.member_json(record, list_id, self.config.merge_fields)


def _native_id(member: str) -> str:
    """The path accepts the subscriber hash or the address itself."""
    return subscriber_hash(member) if "@" in member else member.lower()


def _json_or_none(text: object) -> Any:
    """An operation's body (a JSON string); None, which fails validation, when it is not one."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _ref(member: dict[str, Any]) -> RecordRef:
    merge_fields = member.get("merge_fields") or {}
    return RecordRef.of(merge_fields.get(members.RECORD_ID_TAG), merge_fields.get(members.VERSION_TAG))


def _problem(status: int, title: str, detail: str, extra: dict[str, Any] | None = None) -> web.Response:
    body = {"type": members.ERRORS_DOC, "title": title, "status": status, "detail": detail}
    body.update(instance=correlation_id(), **(extra or {}))
    return web.json_response(body, status=status, content_type="application/problem+json")
