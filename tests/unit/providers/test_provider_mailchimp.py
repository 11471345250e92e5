"""Mailchimp adapter: base URL and auth, batch subscribe per spec, member errors, capped deletes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError, PermanentError, RetryableError
from pipeline.providers import dispatch_batch_max
from pipeline.providers.mailchimp import MailchimpMapper, MailchimpProvider, MemberHolder, may_archive
from pipeline.providers.mailchimp_batches import batch_threshold, gathers
from pipeline.settings import ProvidersSettings
from tests.unit.providers.wire import MAILCHIMP, Recorder, answer, change, mailchimp, records, spec_validator

SPEC = "mailchimp-lists-members.openapi.json"
MAPPER = MailchimpMapper(MAILCHIMP)
DIRECT = MAILCHIMP.model_copy(update={"batch_operations_min": 1000})  # every member request on its own


def _md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def _subscribed(*emails: str, errors: list[dict[str, str]] | None = None) -> httpx.Response:
    members = [{"id": _md5(e), "email_address": e, "status": "subscribed"} for e in emails]
    errors = errors or []
    return answer(200, {"new_members": members, "updated_members": [], "errors": errors,
                        "total_created": len(members), "total_updated": 0, "error_count": len(errors)})


def _held_by(record_id: str | None, status: str = "subscribed") -> httpx.Response:
    """A member GET's answer (``fields=status,merge_fields.CSID``): the record whose member it is."""
    return answer(200, {"status": status, "merge_fields": {} if record_id is None else {"CSID": record_id}})


def _member(request: httpx.Request) -> str:
    return request.url.path.rsplit("/", 1)[-1]


async def test_batch_subscribe_request_matches_the_spec() -> None:
    """Batch subscribe posts to the data center's /lists/{id} with basic auth and a valid body."""
    provider, wire = mailchimp(lambda request: _subscribed("ann@example.com"))
    batch = records(MAPPER, change("r1", email="ann@example.com", first_name="Ann", subscribed=True))
    results = await provider.deliver(batch)
    await provider.aclose()
    request = wire.requests[0]
    assert (request.method, str(request.url)) == ("POST", "https://us6.api.mailchimp.com/3.0/lists/list1")
    credentials = base64.b64encode(b"contactsync:0123456789abcdef-us6").decode()
    assert request.headers["Authorization"] == f"Basic {credentials}"
    body = json.loads(request.content)
    spec_validator(SPEC, "MembersToSubscribeUnsubscribeTofromAListInBatch",
                   closed=("MembersToSubscribeUnsubscribeTofromAListInBatch", "AddListMembers")
                   ).validate(body)
    assert body == {"update_existing": True, "members": [{
        "email_address": "ann@example.com", "status": "subscribed",
        "merge_fields": {"FNAME": "Ann", "CSID": "r1", "CSVERSION": "7"}}]}
    assert results[0].ok and results[0].provider_id == _md5("ann@example.com")


async def test_base_url_comes_from_the_key_or_settings() -> None:
    """Without base_url the key's data center picks the host; a key without one is a ConfigError."""
    with pytest.raises(ConfigError):
        MailchimpProvider(MAILCHIMP.model_copy(update={"api_key": SecretStr("0123456789abcdef")}))
    local = MAILCHIMP.model_copy(update={"api_key": SecretStr("key"), "base_url": "http://127.0.0.1:9/3.0"})
    provider, wire = mailchimp(lambda request: _subscribed("ann@example.com"), local)
    await provider.deliver(records(MAPPER, change("r1", email="ann@example.com")))
    await provider.aclose()
    assert str(wire.requests[0].url) == "http://127.0.0.1:9/3.0/lists/list1"


async def test_member_errors_fail_only_their_members() -> None:
    """An error in the 200 body fails the member it names (matched case-insensitively), no other:
    refused data (a named field) for good, a field-less generic error for another try."""
    errors = [{"email_address": "BOB@example.com", "error": "looks fake or invalid",
               "error_code": "ERROR_GENERIC", "field": "email_address"},
              {"email_address": "cy@example.com", "error": "The member could not be saved at this time",
               "error_code": "ERROR_GENERIC"}]
    provider, _ = mailchimp(lambda request: _subscribed("ann@example.com", errors=errors))
    batch = records(MAPPER, *(change(f"r{i}", email=f"{n}@example.com") for i, n in enumerate(("ann", "bob", "cy"))))
    results = await provider.deliver(batch)
    await provider.aclose()
    assert results[0].ok
    assert type(results[1].error) is PermanentError and results[1].error.code == "ERROR_GENERIC"
    assert type(results[2].error) is RetryableError


async def test_unattributed_member_error_makes_the_rest_retryable() -> None:
    """An error naming no member of the batch leaves the others unconfirmed, hence retryable."""
    errors = [{"email_address": "someone@else.org", "error": "?", "error_code": "ERROR_GENERIC"}]
    provider, _ = mailchimp(lambda request: _subscribed(errors=errors))
    results = await provider.deliver(records(MAPPER, change("r1", email="ann@example.com")))
    await provider.aclose()
    assert type(results[0].error) is RetryableError


async def test_deletes_archive_each_member_and_404_is_done() -> None:
    """Each delete GETs its member's holder then DELETEs it; a 404 (to either) is done, a 500 retries
    that one."""
    statuses = {_md5("a@x.org"): 200, _md5("b@x.org"): 404, _md5("c@x.org"): 500}

    def handle(request: httpx.Request) -> httpx.Response:
        status = statuses[_member(request)]
        if status != 200:
            return answer(status)
        return _held_by("r0") if request.method == "GET" else answer(204)

    provider, wire = mailchimp(handle, DIRECT)
    batch = records(MAPPER, *(change(f"r{i}", "delete", email=f"{c}@x.org") for i, c in enumerate("abc")))
    results = await provider.deliver(batch)
    await provider.aclose()
    assert {(r.method, r.url.path) for r in wire.requests} == {
        ("GET", f"/3.0/lists/list1/members/{member}") for member in statuses} | {
        ("DELETE", f"/3.0/lists/list1/members/{_md5('a@x.org')}")}
    assert wire.requests[0].url.params["fields"] == "status,merge_fields.CSID"
    assert [(r.ok, r.provider_id) for r in results[:2]] == [(True, _md5("a@x.org")), (True, None)]
    assert type(results[2].error) is RetryableError and results[2].error.status == 500


async def test_a_delete_leaves_the_member_another_record_holds_now() -> None:
    """The late delete of a primary-key update's old key (r3) finds the member held by the new key
    (r30): it archives nothing and is done."""
    provider, wire = mailchimp(lambda request: _held_by("r30") if request.method == "GET" else answer(204))
    results = await provider.deliver(records(MAPPER, change("r3", "delete", email="ann@x.org")))
    await provider.aclose()
    assert [r.method for r in wire.requests] == ["GET"]
    assert results[0].ok and results[0].provider_id is None


def test_a_member_may_be_archived_only_while_it_is_the_records() -> None:
    """Live and held by the record, or by no record: archive. Held by another, or archived: leave."""
    assert may_archive(MemberHolder(status="subscribed", merge_fields={"CSID": "3"}), "3", "CSID")
    assert may_archive(MemberHolder(status="unsubscribed", merge_fields={"CSID": ""}), "3", "CSID")
    assert may_archive(MemberHolder(status="subscribed"), "3", "CSID")
    assert not may_archive(MemberHolder(status="subscribed", merge_fields={"CSID": "30"}), "3", "CSID")
    assert not may_archive(MemberHolder(status="archived", merge_fields={"CSID": "3"}), "3", "CSID")


async def test_deletes_never_exceed_max_in_flight() -> None:
    """Concurrent deletes, across batches too, never hold more than max_in_flight requests at once."""
    active, peak = 0, 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return _held_by(None) if request.method == "GET" else httpx.Response(204)

    provider, wire = mailchimp(handle, DIRECT.model_copy(update={"max_in_flight": 3}))
    batches = [records(MAPPER, *(change(f"r{b}-{i}", "delete", email=f"{b}-{i}@x.org")
                                 for i in range(12))) for b in range(2)]
    outcomes = await asyncio.gather(*(provider.deliver(batch) for batch in batches))
    await provider.aclose()
    assert len(wire.requests) == 48 and all(r.ok for results in outcomes for r in results)
    assert peak == 3


def _moved(record, old_email: str):  # type: ignore[no-untyped-def]
    return record.model_copy(update={"previous_key": _md5(old_email)})


async def test_new_email_moves_the_old_member_to_the_new_version() -> None:
    """An email change PATCHes the old member with the whole new version (new address included);
    that settles the record, the batch subscribe carries the others."""
    provider, wire = mailchimp(lambda request: answer(200, {}) if request.method == "PATCH"
                               else _subscribed("ann@example.com"))
    moved, stays = records(MAPPER, change("r1", email="new@example.com", subscribed=True),
                           change("r2", email="ann@example.com", subscribed=True))
    results = await provider.deliver([_moved(moved, "old@example.com"), stays])
    await provider.aclose()
    patch, post = wire.requests
    assert (patch.method, patch.url.path) == ("PATCH", f"/3.0/lists/list1/members/{_md5('old@example.com')}")
    assert json.loads(patch.content) == moved.payload
    assert [m["email_address"] for m in json.loads(post.content)["members"]] == ["ann@example.com"]
    assert results[0].ok and results[0].provider_id == _md5("new@example.com") and results[1].ok


async def test_old_member_is_archived_when_the_new_email_is_a_member_already() -> None:
    """If the new address is taken (400), the old member is archived so it is not left subscribed."""
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            return answer(400, {"title": "Member Exists", "status": 400, "detail": "taken"})
        return answer(204) if request.method == "DELETE" else _subscribed("new@example.com")

    provider, wire = mailchimp(handle)
    (record,) = records(MAPPER, change("r1", email="new@example.com", subscribed=True))
    results = await provider.deliver([_moved(record, "old@example.com")])
    await provider.aclose()
    assert [r.method for r in wire.requests] == ["PATCH", "DELETE", "POST"] and results[0].ok


async def test_failed_move_fails_only_that_member() -> None:
    """A move that fails with a retryable error keeps that member out of the batch, the others go."""
    def handle(request: httpx.Request) -> httpx.Response:
        return answer(503, {"title": "Unavailable"}) if request.method == "PATCH" else _subscribed("b@example.com")

    provider, _ = mailchimp(handle)
    moved, plain = records(MAPPER, change("r1", email="a@example.com"), change("r2", email="b@example.com"))
    results = await provider.deliver([_moved(moved, "old@example.com"), plain])
    await provider.aclose()
    assert isinstance(results[0].error, RetryableError) and results[1].ok


async def test_a_move_stands_when_the_batch_subscribe_of_the_same_call_fails() -> None:
    """A member moved to its new address is delivered even if the batch subscribe carrying the
    other records fails: the platform holds the move, the others get the subscribe's error."""
    provider, _ = mailchimp(lambda request: answer(200, {}) if request.method == "PATCH"
                            else answer(503, {"title": "Unavailable"}))
    moved, plain = records(MAPPER, change("r1", email="gmail@x.org"), change("r2", email="b@x.org"))
    results = await provider.deliver([_moved(moved, "outlook@x.org"), plain])
    await provider.aclose()
    assert results[0].ok and results[0].provider_id == _md5("gmail@x.org")
    assert isinstance(results[1].error, RetryableError) and results[1].error.status == 503


async def test_delete_also_archives_the_member_under_the_held_address() -> None:
    """A delete whose email changed since the last delivery archives the old member too."""
    provider, wire = mailchimp(lambda request: _held_by("r1") if request.method == "GET" else answer(204))
    (record,) = records(MAPPER, change("r1", "delete", email="new@example.com"))
    results = await provider.deliver([_moved(record, "old@example.com")])
    await provider.aclose()
    paths = sorted(r.url.path.rsplit("/", 1)[-1] for r in wire.requests if r.method == "DELETE")
    assert paths == sorted([_md5("new@example.com"), _md5("old@example.com")]) and results[0].ok


def _strays(record, *emails: str):  # type: ignore[no-untyped-def]
    return record.model_copy(update={"stray_keys": tuple(_md5(e) for e in emails)})


async def test_stray_members_are_archived_once_the_record_is_upserted() -> None:
    """After the batch subscribe, the members an unconfirmed send may have left are archived (a 404
    is fine), never the member just written; a stray that cannot be archived fails the record."""
    statuses = {_md5("gmail@x.org"): 204, _md5("lost@x.org"): 404, _md5("stuck@x.org"): 503}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _subscribed("hooli@x.org", "b@x.org")
        status = statuses[_member(request)]
        return _held_by("r1") if request.method == "GET" and status == 204 else answer(status)

    provider, wire = mailchimp(handle, DIRECT)
    hooli, stuck = records(MAPPER, change("r1", email="hooli@x.org"), change("r2", email="b@x.org"))
    results = await provider.deliver([_strays(hooli, "gmail@x.org", "lost@x.org", "hooli@x.org"),
                                      _strays(stuck, "stuck@x.org")])
    await provider.aclose()
    assert wire.requests[0].method == "POST"
    asked = sorted(_member(r) for r in wire.requests if r.method == "GET")
    deleted = [_member(r) for r in wire.requests if r.method == "DELETE"]
    assert (asked, deleted) == (sorted(statuses), [_md5("gmail@x.org")])
    assert results[0].ok and results[0].provider_id == _md5("hooli@x.org")
    assert isinstance(results[1].error, RetryableError) and results[1].error.status == 503


async def test_strays_are_kept_when_the_upsert_fails() -> None:
    """A record whose upsert failed archives nothing: its strays wait for the send that succeeds."""
    provider, wire = mailchimp(lambda request: answer(503, {"title": "Unavailable"}))
    (record,) = records(MAPPER, change("r1", email="hooli@x.org"))
    results = await provider.deliver([_strays(record, "gmail@x.org")])
    await provider.aclose()
    assert [r.method for r in wire.requests] == ["POST"] and isinstance(results[0].error, RetryableError)


async def test_delete_archives_the_stray_members_too() -> None:
    """A delete archives its member, the held one and every stray; those already gone answer 404."""
    gone = {_md5("gmail@x.org")}
    provider, wire = mailchimp(lambda request: answer(404) if _member(request) in gone
                               else _held_by("r1") if request.method == "GET" else answer(204), DIRECT)
    (record,) = records(MAPPER, change("r1", "delete", email="hooli@x.org"))
    results = await provider.deliver([_strays(_moved(record, "outlook@x.org"), "gmail@x.org", "yahoo@x.org")])
    await provider.aclose()
    asked = sorted(_member(r) for r in wire.requests if r.method == "GET")
    deleted = sorted(_member(r) for r in wire.requests if r.method == "DELETE")
    assert asked == sorted(_md5(f"{n}@x.org") for n in ("hooli", "outlook", "gmail", "yahoo"))
    assert deleted == sorted(_md5(f"{n}@x.org") for n in ("hooli", "outlook", "yahoo"))
    assert results[0].ok and results[0].provider_id == _md5("hooli@x.org")


# --- batch operations ------------------------------------------------------------------------------

BATCHED = MAILCHIMP.model_copy(update={"batch_poll_s": 0.01, "batch_timeout_s": 5.0})
STORAGE = "https://mailchimp-api-batch.s3.amazonaws.com"
Operation = Callable[[str, str, dict[str, Any] | None], httpx.Response]


def _archive(results: list[dict[str, Any]]) -> bytes:
    """A results archive as Mailchimp stores it: a gzipped tar of JSON files of results."""
    data = json.dumps(results).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("b1/0.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Batches:
    """Mailchimp's batch endpoints for an adapter under test: each operation answered by
    ``operation(method, path, body)``, results stored at ``STORAGE``; ``finishes=False``: never done."""

    def __init__(self, operation: Operation, *, finishes: bool = True) -> None:
        self.posted: list[list[dict[str, Any]]] = []
        self.storage = Recorder(self._stored)
        self._operation = operation
        self._finishes = finishes
        self._archives: dict[str, bytes] = {}

    def api(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/3.0/batches" and request.method == "POST":
            operations = json.loads(request.content)["operations"]
            batch_id = f"b{len(self.posted)}"
            self.posted.append(operations)
            self._archives[batch_id] = _archive([self._result(op) for op in operations])
            return answer(200, {"id": batch_id, "status": "pending", "total_operations": len(operations)})
        if request.url.path == "/3.0/batches":
            status = "finished" if self._finishes else "started"
            return answer(200, {"batches": [
                {"id": batch_id, "status": status, "response_body_url": f"{STORAGE}/{batch_id}.tar.gz"}
                for batch_id in reversed(self._archives)], "total_items": len(self._archives)})
        body = json.loads(request.content) if request.content else None
        return self._operation(request.method, request.url.path.removeprefix("/3.0"), body)

    def _result(self, operation: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(operation["body"]) if "body" in operation else None
        response = self._operation(operation["method"], operation["path"], body)
        return {"status_code": response.status_code, "operation_id": operation["operation_id"],
                "response": response.text}

    def _stored(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=self._archives[request.url.path.strip("/").removesuffix(".tar.gz")])

    def methods(self) -> list[list[str]]:
        """The methods of each batch's operations, in order."""
        return [[op["method"] for op in operations] for operations in self.posted]


def _on_member(statuses: dict[str, int], holder: str = "r1") -> Operation:
    """Member operations answered by the member's status in ``statuses`` (200 when absent; 400 to a
    PATCH only); a GET
    names ``holder`` as the record holding the member; batch subscribe subscribes everyone sent."""

    def operate(method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        if path == "/lists/list1":
            assert body is not None
            return _subscribed(*(m["email_address"] for m in body["members"]))
        status = statuses.get(path.rsplit("/", 1)[-1], 200)
        if status == 400 and method == "PATCH":  # the new address is taken; the old member can go
            return answer(400, {"title": "Member Exists", "status": 400, "detail": "taken"})
        if status not in (200, 400):
            return answer(status, {"title": "Failed", "status": status, "detail": "?"})
        return _held_by(holder) if method == "GET" else answer(204) if method == "DELETE" else answer(200, {})

    return operate


async def test_moves_go_as_one_batch_each_settled_by_its_own_result() -> None:
    """Three moves are one POST /batches (per spec); their results map like direct answers: 200
    moved, 404 subscribed instead, 400 old member archived then subscribed, 503 retried."""
    old = {name: _md5(f"old-{name}@x.org") for name in ("moved", "gone", "taken", "down")}
    batches = Batches(_on_member({old["gone"]: 404, old["taken"]: 400, old["down"]: 503}))
    provider, wire = mailchimp(batches.api, BATCHED, storage=batches.storage)
    batch = [_moved(record, f"old-{name}@x.org") for name, record in zip(old, records(
        MAPPER, *(change(f"r{i}", email=f"{name}@x.org") for i, name in enumerate(old))), strict=True)]
    results = await provider.deliver(batch)
    await provider.aclose()
    spec_validator(SPEC, "BatchesBody", closed=("BatchesBody", "Operations")).validate({"operations": batches.posted[0]})
    assert batches.methods() == [["PATCH"] * 4]
    assert json.loads(batches.posted[0][0]["body"]) == batch[0].payload
    assert [r.method for r in wire.requests if r.url.path.endswith(old["taken"])] == ["DELETE"]  # one: direct
    subscribed = [m["email_address"] for body in wire.bodies("/lists/list1") for m in body["members"]]
    assert subscribed == ["gone@x.org", "taken@x.org"]
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[0].provider_id == _md5("moved@x.org")
    assert isinstance(results[3].error, RetryableError) and results[3].error.status == 503


async def test_a_batch_subscribe_rides_in_the_moves_batch_answered_per_member() -> None:
    """The other members' batch subscribe is an operation of the moves' POST /batches (no direct
    request); its result is read like the direct answer: a member named in errors[] fails alone."""
    def operate(method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        if path != "/lists/list1":
            return answer(200, {})
        assert body is not None
        refused = {"email_address": "bad@x.org", "error": "Invalid FNAME", "error_code": "ERROR_GENERIC",
                   "field": "FNAME"}
        return _subscribed("good@x.org", errors=[refused])

    batches = Batches(operate)
    provider, wire = mailchimp(batches.api, BATCHED, storage=batches.storage)
    moved = [_moved(record, f"old{i}@x.org") for i, record in enumerate(records(
        MAPPER, *(change(f"m{i}", email=f"new{i}@x.org") for i in range(2))))]
    plain = records(MAPPER, change("r1", email="good@x.org"), change("r2", email="bad@x.org"))
    results = await provider.deliver([*moved, *plain])
    await provider.aclose()
    (operations,) = batches.posted
    spec_validator(SPEC, "BatchesBody", closed=("BatchesBody", "Operations")).validate({"operations": operations})
    assert sorted(batches.methods()[0]) == ["PATCH", "PATCH", "POST"]
    (subscribe,) = [json.loads(op["body"]) for op in operations if op["method"] == "POST"]
    assert [m["email_address"] for m in subscribe["members"]] == ["good@x.org", "bad@x.org"]
    assert not wire.bodies("/lists/list1")
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[2].provider_id == _md5("good@x.org")
    assert isinstance(results[3].error, PermanentError) and results[3].error.code == "ERROR_GENERIC"


async def test_a_subscribe_of_an_address_a_move_leaves_waits_for_the_move() -> None:
    """A member subscribed at the address another record's move leaves (or takes) is not asked for
    with the moves, whose batch may run in any order: it is subscribed once they are answered."""
    batches = Batches(_on_member({}))
    provider, wire = mailchimp(batches.api, BATCHED, storage=batches.storage)
    moving = [_moved(record, f"{name}-old@x.org") for name, record in zip("ab", records(
        MAPPER, change("ra", email="a-new@x.org"), change("rb", email="b-new@x.org")), strict=True)]
    takes_a_old, plain = records(MAPPER, change("rc", email="a-old@x.org"), change("rd", email="d@x.org"))
    results = await provider.deliver([*moving, takes_a_old, plain])
    await provider.aclose()
    (operations,) = batches.posted
    in_batch = [m["email_address"] for op in operations if op["method"] == "POST"
                for m in json.loads(op["body"])["members"]]
    assert in_batch == ["d@x.org"]
    apart = [i for i, r in enumerate(wire.requests) if r.url.path == "/3.0/lists/list1"]
    assert [m["email_address"] for m in wire.bodies("/lists/list1")[0]["members"]] == ["a-old@x.org"]
    assert apart and apart[0] > min(i for i, r in enumerate(wire.requests) if r.method == "GET")
    assert all(r.ok for r in results)


async def test_batch_results_are_fetched_from_storage_without_the_key() -> None:
    """The poll asks GET /batches only for id, status and result URL; the archive is fetched
    through the storage client (not the API's), with no Authorization header."""
    batches = Batches(_on_member({}))
    provider, wire = mailchimp(batches.api, BATCHED, storage=batches.storage)
    batch = [_moved(record, f"old{i}@x.org") for i, record in enumerate(records(
        MAPPER, *(change(f"r{i}", email=f"new{i}@x.org") for i in range(3))))]
    results = await provider.deliver(batch)
    await provider.aclose()
    polls = [r for r in wire.requests if r.method == "GET" and r.url.path == "/3.0/batches"]
    assert polls and polls[0].url.params["fields"] == "batches.id,batches.status,batches.response_body_url"
    assert not [r for r in wire.requests if r.url.host != "us6.api.mailchimp.com"]
    (fetched,) = batches.storage.requests
    assert str(fetched.url) == f"{STORAGE}/b0.tar.gz" and "Authorization" not in fetched.headers
    assert all(r.ok for r in results)


async def test_batched_guards_archive_only_the_records_own_members() -> None:
    """Deletes' guard GETs go as one batch, then the DELETEs of the members each record still holds
    as a second; a member another record holds now is left alone and its delete is done."""
    emails = [f"{n}@x.org" for n in ("a", "b", "c", "d")]
    held_by_other = _md5("d@x.org")

    def operate(method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        record = "r30" if path.endswith(held_by_other) else "r" + "abcd"[[_md5(e) for e in emails].index(path[-32:])]
        return _held_by(record) if method == "GET" else answer(204)

    batches = Batches(operate)
    provider, wire = mailchimp(batches.api, BATCHED, storage=batches.storage)
    batch = records(MAPPER, *(change(f"r{e[0]}", "delete", email=e) for e in emails))
    results = await provider.deliver(batch)
    await provider.aclose()
    assert batches.methods() == [["GET"] * 4, ["DELETE"] * 3]
    assert batches.posted[0][0]["params"] == {"fields": "status,merge_fields.CSID"}
    assert held_by_other not in {op["path"][-32:] for op in batches.posted[1]}
    assert [(r.ok, r.provider_id) for r in results] == [
        (True, _md5("a@x.org")), (True, _md5("b@x.org")), (True, _md5("c@x.org")), (True, None)]


async def test_a_batch_that_never_finishes_fails_its_records_retryably() -> None:
    """A batch still unfinished at batch_timeout_s fails every record it carried for another try;
    none is reported delivered, and none is subscribed on a move's unknown result."""
    batches = Batches(_on_member({}), finishes=False)
    settings = BATCHED.model_copy(update={"batch_timeout_s": 0.2})
    provider, wire = mailchimp(batches.api, settings, storage=batches.storage)
    batch = [_moved(record, f"old{i}@x.org") for i, record in enumerate(records(
        MAPPER, *(change(f"r{i}", email=f"new{i}@x.org") for i in range(3))))]
    results = await provider.deliver(batch)
    await provider.aclose()
    assert all(isinstance(r.error, RetryableError) and r.error.code == "batch_unfinished" for r in results)
    assert not wire.bodies("/lists/list1") and not batches.storage.requests


@pytest.mark.parametrize(
    ("rate_per_second", "poll_s", "threshold"),
    [(0.4, 1.0, 3), (10.0, 1.0, 13), (10.0, 0.01, 3), (10_000.0, 1.0, 10_003)],
)
def test_member_requests_go_as_a_batch_only_where_the_lane_would_send_them_one_by_one_slower(
    rate_per_second: float, poll_s: float, threshold: int
) -> None:
    """A batch costs two lane requests and a poll's wait: on the API-efficiency benchmark's 0.4/s lane
    three moves are worth one; at the default 10/s only a burst of more than a second's worth; on an
    unlimited lane (the latency benchmark's) never, so a move is not held a second for a poll."""
    settings = MAILCHIMP.model_copy(update={"rate_per_second": rate_per_second, "batch_poll_s": poll_s})
    assert batch_threshold(settings) == threshold


@pytest.mark.parametrize(("rate_per_second", "waits"), [(0.4, True), (10.0, True), (3_000.0, True), (10_000.0, False)])
def test_member_requests_wait_for_each_other_only_where_a_batch_may_come_of_them(
    rate_per_second: float, waits: bool
) -> None:
    """At the default 500 × 4 a dispatch asks for up to ~2,000 member requests at once: a lane of
    10,000 requests a second would batch only past 10,003, so its requests go at once, unwaited."""
    assert gathers(MAILCHIMP.model_copy(update={"rate_per_second": rate_per_second})) is waits


@pytest.mark.parametrize(("name", "rate_per_second", "events"), [
    ("mailchimp", 0.4, 2_000),  # its /batches carry what one dispatch holds: all it can send at once
    ("mailchimp", 10_000.0, 1_000),  # nothing gathers: no more than any stage takes
    ("hubspot", 0.4, 400),  # 100 × 4 in flight, under the stages' 1,000
])
def test_a_dispatch_takes_more_than_a_stage_only_where_its_requests_are_gathered_into_batches(
    name: str, rate_per_second: float, events: int
) -> None:
    lane = getattr(ProvidersSettings(), name).model_copy(update={"rate_per_second": rate_per_second})
    assert dispatch_batch_max(name, lane, stage_batch_max=1_000) == events
