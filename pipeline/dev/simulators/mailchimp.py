"""Mailchimp Marketing API 3.0: batch subscribe and member PUT, PATCH, GET, DELETE on one audience.

Base URL ``http://host:port/3.0``. Auth is HTTP basic with any user name and the API key as
password. More than ``max_connections`` requests in flight at once: 429. A PATCH that changes the
address moves the member: the old hash is archived, the new one created with the member's data. Errors are
``application/problem+json``; per-member failures of a batch come in a 200 body's ``errors``.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from aiohttp import web

from pipeline.dev.simulators import mailchimp_members as members
from pipeline.dev.simulators import webhook_bodies
from pipeline.dev.simulators.base import ProviderSimulator, RejectedRequest
from pipeline.dev.simulators.config import MailchimpSimConfig
from pipeline.dev.simulators.identifiers import correlation_id, subscriber_hash
from pipeline.dev.simulators.notifier import Notification
from pipeline.dev.simulators.rate_window import RollingWindow
from pipeline.dev.simulators.request_log import RecordRef
from pipeline.dev.simulators.specs import MAILCHIMP_SPEC, schema_problems
from pipeline.dev.simulators.store import Operation, RecordStore, StoredRecord

_TITLES = {400: "Invalid Resource", 401: "API Key Invalid", 404: "Resource Not Found", 405: "Method Not Allowed"}
_INVALID = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."


class MailchimpSimulator(ProviderSimulator[MailchimpSimConfig]):
    name = "mailchimp"
    api_prefix = "/3.0"

    def __init__(self, config: MailchimpSimConfig) -> None:
        super().__init__(config, RecordStore(members.RECORD_ID_TAG, members.VERSION_TAG, ()))
        self._per_second = RollingWindow(config.requests_per_second or 1, 1.0)

    def add_api_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/3.0/lists/{list_id}", self.batch_subscribe)
        member = "/3.0/lists/{list_id}/members/{member}"
        router.add_put(member, self.put_member)
        router.add_patch(member, self.patch_member)
        router.add_get(member, self.get_member)
        router.add_delete(member, self.delete_member)

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

    # --- endpoints ----------------------------------------------------------------------------

    async def batch_subscribe(self, request: web.Request) -> web.Response:
        list_id = self._list_id(request)
        body = await self._validated(request, "MembersToSubscribeUnsubscribeTofromAListInBatch")
        batch: list[dict[str, Any]] = body["members"]
        if len(batch) > self.config.max_batch_members:
            limit = self.config.max_batch_members
            raise RejectedRequest(400, f"Batch subscribe takes at most {limit} members; got {len(batch)}.")
        self.note_records(request, [_ref(member) for member in batch])
        check_duplicates = request.query.get("skip_duplicate_check", "false").lower() != "true"
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
            record, created = self._write(request, member, member.get("status"))
            answer["new_members" if created else "updated_members"].append(self._json(record, list_id))
        if answer["errors"]:
            self.note_partial_failure(request)
        counts = {"total_created": len(answer["new_members"]), "total_updated": len(answer["updated_members"])}
        return web.json_response({**answer, **counts, "error_count": len(answer["errors"]), "_links": []})

    async def put_member(self, request: web.Request) -> web.Response:
        list_id = self._list_id(request)
        body = await self._validated(request, "AddListMembers2")
        self.note_records(request, [_ref(body)])
        self._check_member_data(body)
        if _native_id(request.match_info["member"]) != subscriber_hash(body["email_address"]):
            mismatch = {"field": "email_address", "message": "The address does not match the subscriber hash."}
            raise RejectedRequest(400, _INVALID, extra={"errors": [mismatch]})
        existing = self._live(_native_id(request.match_info["member"]))
        status = body.get("status") or (existing.fields["status"] if existing else body["status_if_new"])
        record, _ = self._write(request, body, status)
        return web.json_response(self._json(record, list_id))

    async def patch_member(self, request: web.Request) -> web.Response:
        """Update a member; a new ``email_address`` moves it to that address's hash."""
        list_id = self._list_id(request)
        body = await self._validated(request, "AddListMembers3")
        current = self._live(_native_id(request.match_info["member"]))
        if current is None:
            raise RejectedRequest(404, "The requested resource could not be found.")
        self.note_records(request, [self.ref(current)])
        email = body.get("email_address") or current.fields["email_address"]
        self._check_member_data({**body, "email_address": email})
        target = subscriber_hash(email)
        if target != current.native_id and self._live(target) is not None:
            detail = f"{email} is already a list member. Use PUT to insert or update list members."
            raise RejectedRequest(400, detail, code="Member Exists")
        status = body.get("status") or current.fields["status"]
        changes = members.stored_fields({**body, "email_address": email}, status)
        seq = self.request_seq(request)
        if target != current.native_id:
            changes = {**current.fields, **changes}
            self.store.archive(current.native_id, at=time.time(), request_seq=seq)
        record, _ = self.store.write(target, changes, at=time.time(), request_seq=seq)
        return web.json_response(self._json(record, list_id))

    async def get_member(self, request: web.Request) -> web.Response:
        list_id = self._list_id(request)
        record = self.store.get(_native_id(request.match_info["member"]))
        if record is None:
            raise RejectedRequest(404, "The requested resource could not be found.")
        self.note_records(request, [self.ref(record)])
        return web.json_response(self._json(record, list_id))

    async def delete_member(self, request: web.Request) -> web.Response:
        self._list_id(request)
        record = self._live(_native_id(request.match_info["member"]))
        if record is None:
            raise RejectedRequest(404, "The requested resource could not be found.")
        self.note_records(request, [self.ref(record)])
        self.store.archive(record.native_id, at=time.time(), request_seq=self.request_seq(request))
        return web.Response(status=204)

    # --- helpers ------------------------------------------------------------------------------

    def _list_id(self, request: web.Request) -> str:
        list_id = request.match_info["list_id"]
        if list_id != self.config.list_id:
            raise RejectedRequest(404, "The requested resource could not be found.")
        return list_id

    async def _validated(self, request: web.Request, component: str) -> dict[str, Any]:
        body = await self.json_body(request)
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

    def _write(
        self, request: web.Request, member: dict[str, Any], status: str | None
    ) -> tuple[StoredRecord, bool]:
        native_id = subscriber_hash(member["email_address"])
        current = self._live(native_id)
        fields = members.stored_fields(member, status or (current.fields["status"] if current else "subscribed"))
        return self.store.write(native_id, fields, at=time.time(), request_seq=self.request_seq(request))

    def _live(self, native_id: str) -> StoredRecord | None:
        record = self.store.get(native_id)
        return record if record is not None and not record.archived else None

    def _json(self, record: StoredRecord, list_id: str) -> dict[str, Any]:
        return members.member_json(record, list_id, self.config.merge_fields)


def _native_id(member: str) -> str:
    """The path accepts the subscriber hash or the address itself."""
    return subscriber_hash(member) if "@" in member else member.lower()


def _ref(member: dict[str, Any]) -> RecordRef:
    merge_fields = member.get("merge_fields") or {}
    return RecordRef.of(merge_fields.get(members.RECORD_ID_TAG), merge_fields.get(members.VERSION_TAG))


def _problem(status: int, title: str, detail: str, extra: dict[str, Any] | None = None) -> web.Response:
    body = {"type": members.ERRORS_DOC, "title": title, "status": status, "detail": detail}
    body.update(instance=correlation_id(), **(extra or {}))
    return web.json_response(body, status=status, content_type="application/problem+json")
