"""Mailchimp adapter: base URL and auth, batch subscribe per spec, member errors, capped deletes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import httpx
import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError, PermanentError, RetryableError
from pipeline.providers.mailchimp import MailchimpMapper, MailchimpProvider, MemberHolder, may_archive
from tests.unit.providers.wire import MAILCHIMP, answer, change, mailchimp, records, spec_validator

SPEC = "mailchimp-lists-members.openapi.json"
MAPPER = MailchimpMapper(MAILCHIMP)


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

    provider, wire = mailchimp(handle)
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

    provider, wire = mailchimp(handle, MAILCHIMP.model_copy(update={"max_in_flight": 3}))
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

    provider, wire = mailchimp(handle)
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
                               else _held_by("r1") if request.method == "GET" else answer(204))
    (record,) = records(MAPPER, change("r1", "delete", email="hooli@x.org"))
    results = await provider.deliver([_strays(_moved(record, "outlook@x.org"), "gmail@x.org", "yahoo@x.org")])
    await provider.aclose()
    asked = sorted(_member(r) for r in wire.requests if r.method == "GET")
    deleted = sorted(_member(r) for r in wire.requests if r.method == "DELETE")
    assert asked == sorted(_md5(f"{n}@x.org") for n in ("hooli", "outlook", "gmail", "yahoo"))
    assert deleted == sorted(_md5(f"{n}@x.org") for n in ("hooli", "outlook", "yahoo"))
    assert results[0].ok and results[0].provider_id == _md5("hooli@x.org")
