"""Salesforce adapter: OAuth token handling, collections upsert per SObject, deletes by kept Ids or query-then-delete."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
from pydantic import SecretStr

from pipeline.errors import PermanentError, RetryableError
from pipeline.providers.salesforce import SalesforceMapper, request_of, soql_quote
from tests.unit.providers.wire import (
    DATA,
    SALESFORCE,
    answer,
    change,
    records,
    salesforce,
    token_answer,
    with_token,
)

MAPPER = SalesforceMapper(SALESFORCE)
UPSERT_LEAD = f"{DATA}/composite/sobjects/Lead/ContactSync_Id__c"
UPSERT_CONTACT = f"{DATA}/composite/sobjects/Contact/ContactSync_Id__c"


def _saved(*ids: str) -> list[dict[str, object]]:
    return [{"id": sf_id, "success": True, "errors": [], "created": True} for sf_id in ids]


def _failed(code: str) -> dict[str, object]:
    return {"id": None, "success": False,
            "errors": [{"statusCode": code, "message": f"{code} happened", "fields": []}]}


async def test_password_grant_then_bearer_upsert() -> None:
    """The token is fetched with the password grant and the upsert uses it on instance_url."""
    provider, wire = salesforce(with_token(lambda request: answer(200, _saved("00Q1"))))
    results = await provider.deliver(records(MAPPER, change("r1", contact_type="lead", last_name="Li")))
    await provider.aclose()
    token, upsert = wire.requests
    assert str(token.url) == "https://login.salesforce.com/services/oauth2/token"
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token.content.decode()) == {
        "grant_type": ["password"], "client_id": ["client-id"], "client_secret": ["client-secret"],
        "username": ["sync@example.com"], "password": ["password+securitytoken"]}
    assert (upsert.method, str(upsert.url)) == ("PATCH", UPSERT_LEAD)
    assert upsert.headers["Authorization"] == "Bearer 00Dxx!token-1"
    assert json.loads(upsert.content) == {"allOrNone": False, "records": [{
        "attributes": {"type": "Lead"}, "LastName": "Li", "Company": "[not provided]",
        "ContactSync_Id__c": "r1", "ContactSync_Version__c": "7"}]}
    assert results[0].ok and results[0].provider_id == "00Q1"


async def test_client_credentials_grant_without_username() -> None:
    """With no username the token request uses the client_credentials grant."""
    settings = SALESFORCE.model_copy(update={"username": "", "password": SecretStr("")})
    provider, wire = salesforce(with_token(lambda request: answer(200, _saved("003A"))), settings)
    await provider.deliver(records(MAPPER, change("r1")))
    await provider.aclose()
    assert parse_qs(wire.requests[0].content.decode()) == {
        "grant_type": ["client_credentials"], "client_id": ["client-id"],
        "client_secret": ["client-secret"]}


async def test_token_is_cached_and_refreshed_after_401() -> None:
    """One login serves many calls; a 401 INVALID_SESSION_ID is retryable and the next call logs in."""
    tokens = iter(["00Dxx!token-1", "00Dxx!token-2"])
    expired = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    upserts = iter([answer(200, _saved("003A")), answer(401, expired), answer(200, _saved("003A"))])

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/services/oauth2/token":
            return token_answer(next(tokens))
        return next(upserts)

    provider, wire = salesforce(handle)
    batch = records(MAPPER, change("r1"))
    first, second, third = [await provider.deliver(batch) for _ in range(3)]
    await provider.aclose()
    assert first[0].ok and third[0].ok
    assert type(second[0].error) is RetryableError and second[0].error.code == "INVALID_SESSION_ID"
    paths = [r.url.path.rsplit("/", 1)[-1] for r in wire.requests]
    assert paths == ["token", "ContactSync_Id__c", "ContactSync_Id__c", "token", "ContactSync_Id__c"]
    assert wire.requests[-1].headers["Authorization"] == "Bearer 00Dxx!token-2"


async def test_failed_login_is_a_permanent_error_per_record() -> None:
    """Wrong credentials (400 invalid_grant) fail the batch permanently, without a data call."""
    body = {"error": "invalid_grant", "error_description": "authentication failure"}
    provider, wire = salesforce(lambda request: answer(400, body))
    results = await provider.deliver(records(MAPPER, change("r1"), change("r2")))
    await provider.aclose()
    assert len(wire.requests) == 1
    assert all(type(r.error) is PermanentError and r.error.code == "invalid_grant" for r in results)


async def test_one_upsert_call_per_sobject_in_input_order() -> None:
    """Leads and Contacts go in one call per type, and results come back in the batch's order."""

    def handle(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)["records"]
        return answer(200, _saved(*(f"id-{r['ContactSync_Id__c']}" for r in sent)))

    provider, wire = salesforce(with_token(handle))
    batch = records(MAPPER, change("r1", contact_type="lead"), change("r2", contact_type="customer"),
                    change("r3", contact_type="prospect"))
    results = await provider.deliver(batch)
    await provider.aclose()
    assert sorted(str(r.url) for r in wire.requests[1:]) == [UPSERT_CONTACT, UPSERT_LEAD]
    assert [r.provider_id for r in results] == ["id-r1", "id-r2", "id-r3"]


async def test_per_record_errors_are_classified() -> None:
    """Validation codes are permanent; UNABLE_TO_LOCK_ROW and ALL_OR_NONE rollbacks are retryable."""
    body = [_saved("00Q1")[0], _failed("REQUIRED_FIELD_MISSING"), _failed("UNABLE_TO_LOCK_ROW"),
            _failed("ALL_OR_NONE_OPERATION_ROLLED_BACK"), _failed("INVALID_EMAIL_ADDRESS")]
    provider, _ = salesforce(with_token(lambda request: answer(200, body)))
    batch = records(MAPPER, *(change(f"r{i}", contact_type="lead") for i in range(5)))
    results = await provider.deliver(batch)
    await provider.aclose()
    assert results[0].ok
    assert [type(r.error) for r in results[1:]] == [PermanentError, RetryableError, RetryableError,
                                                    PermanentError]
    assert results[1].error is not None and results[1].error.code == "REQUIRED_FIELD_MISSING"


async def test_result_count_mismatch_is_retryable() -> None:
    """Fewer results than records cannot be attributed, so every record of that call is retryable."""
    provider, _ = salesforce(with_token(lambda request: answer(200, _saved("003A"))))
    results = await provider.deliver(records(MAPPER, change("r1"), change("r2")))
    await provider.aclose()
    assert all(type(r.error) is RetryableError for r in results)


async def test_delete_queries_then_deletes_by_salesforce_id() -> None:
    """Deletes query the ids by external id in every mapped SObject, then delete them."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/query"):
            soql = request.url.params["q"]
            rows = {"Lead": [("00Q1", "r1")], "Contact": [("003X", "r3"), ("003Y", "r4")]}
            sobject = "Lead" if "FROM Lead" in soql else "Contact"
            found = [{"attributes": {"type": sobject}, "Id": i, "ContactSync_Id__c": k}
                     for i, k in rows[sobject]]
            return answer(200, {"totalSize": len(found), "done": True, "records": found})
        outcome = {"00Q1": _saved("00Q1")[0], "003X": _failed("ENTITY_IS_DELETED"),
                   "003Y": _failed("DELETE_FAILED")}
        return answer(200, [outcome[i] for i in request.url.params["ids"].split(",")])

    provider, wire = salesforce(with_token(handle))
    batch = records(MAPPER, change("r1", "delete", contact_type="lead"), change("r2", "delete"),
                    change("r3", "delete"), change("r4", "delete"))
    results = await provider.deliver(batch)
    await provider.aclose()
    queries = {r.url.params["q"] for r in wire.requests if r.url.path.endswith("/query")}
    assert queries == {
        "SELECT Id, ContactSync_Id__c FROM Lead WHERE ContactSync_Id__c IN ('r1', 'r2', 'r3', 'r4')",
        "SELECT Id, ContactSync_Id__c FROM Contact WHERE ContactSync_Id__c IN ('r1', 'r2', 'r3', 'r4')"}
    delete = wire.requests[-1]
    assert (delete.method, delete.url.path) == ("DELETE", f"/services/data/{SALESFORCE.api_version}"
                                                          "/composite/sobjects")
    assert delete.url.params["allOrNone"] == "false"
    assert sorted(delete.url.params["ids"].split(",")) == ["003X", "003Y", "00Q1"]
    assert [(r.ok, r.provider_id) for r in results[:3]] == [(True, "00Q1"), (True, None), (True, "003X")]
    assert type(results[3].error) is PermanentError and results[3].error.code == "DELETE_FAILED"


def test_soql_values_are_quoted_and_escaped() -> None:
    """A quote or backslash in an external id cannot break out of the SOQL string literal."""
    assert soql_quote("plain-1") == "'plain-1'"
    assert soql_quote("o'brien\\x\n") == "'o\\'brien\\\\x\\n'"


async def test_upsert_adds_its_id_to_the_kept_ones() -> None:
    """A record upserted as a Contact after it was a Lead lives under both Ids; when the kept Ids are
    not known, neither is the whole set."""
    provider, _ = salesforce(with_token(lambda request: answer(200, _saved("003C", "00QN"))))
    lead_before, unknown = records(MAPPER, change("r1", contact_type="customer"), change("r2", contact_type="customer"))
    results = await provider.deliver([lead_before.model_copy(update={"provider_ids": ("00QL",)}), unknown])
    await provider.aclose()
    assert [r.provider_ids for r in results] == [("00QL", "003C"), None]


async def test_delete_by_kept_ids_sends_no_query() -> None:
    """Deletes whose Ids the guard row kept go straight to one collection delete, every kept Id in it."""
    provider, wire = salesforce(with_token(lambda request: answer(200, _saved("00QL", "003C"))))
    deleted, = records(MAPPER, change("r1", "delete"))
    results = await provider.deliver([deleted.model_copy(update={"provider_ids": ("00QL", "003C")})])
    await provider.aclose()
    assert [r.method for r in wire.requests[1:]] == ["DELETE"]
    assert wire.requests[-1].url.params["ids"] == "00QL,003C"
    assert [(r.ok, r.provider_ids) for r in results] == [(True, ())]


async def test_a_kept_id_whose_record_is_gone_for_good_counts_as_deleted() -> None:
    """A record removed for good outside the pipeline answers an invalid reference for its kept Id:
    the delete's end state holds, so it is done, not dead-lettered."""
    gone = lambda request: answer(200, [_failed("INVALID_CROSS_REFERENCE_KEY"), _saved("003C")[0]])  # noqa: E731
    provider, _ = salesforce(with_token(gone))
    deleted, = records(MAPPER, change("r1", "delete"))
    results = await provider.deliver([deleted.model_copy(update={"provider_ids": ("00QL", "003C")})])
    await provider.aclose()
    assert [(r.ok, r.error) for r in results] == [(True, None)]


def test_the_dispatcher_fills_requests_by_the_call_that_carries_them() -> None:
    """Upserts are one call per SObject (a batch mixing Leads and Contacts is two requests), deletes
    one call whatever they were: the dispatcher fills requests call by call."""
    calls = [request_of(MAPPER(c)) for c in (change("r1", contact_type="lead"), change("r2", contact_type="customer"),
                                             change("r3", "delete"))]
    assert calls == ["upsert Lead", "upsert Contact", "delete"]
