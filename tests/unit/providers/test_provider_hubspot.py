"""HubSpot adapter: request shapes against the spec, 207 attribution, deletes by kept ids or read then archive."""

from __future__ import annotations

import json
from typing import Any

import httpx

from pipeline.errors import PermanentError, RetryableError
from pipeline.providers.hubspot import HubSpotMapper
from schemas.dispatch import DispatchRecord
from tests.unit.providers.wire import HUBSPOT, answer, change, hubspot, records, spec_validator

SPEC = "hubspot-contacts-v3.openapi.json"
MAPPER = HubSpotMapper(HUBSPOT)
STAMPS = {"createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
          "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z"}


def _object(hubspot_id: str, record_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": hubspot_id, "archived": False, "new": True, "createdAt": STAMPS["createdAt"],
            "updatedAt": STAMPS["updatedAt"], "properties": {"contactsync_id": record_id, **extra}}


def _batch(results: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": STAMPS["startedAt"],
                            "completedAt": STAMPS["completedAt"]}
    if errors is not None:
        body |= {"errors": errors, "numErrors": len(errors)}
    return body


def _error(category: str, ids: list[str], status: str = "error") -> dict[str, Any]:
    return {"status": status, "category": category, "message": f"{category} for some inputs",
            "context": {"ids": ids}, "errors": [], "links": {}}


def _upserts(*record_ids: str) -> list[DispatchRecord]:
    return records(MAPPER, *(change(rid, email=f"{rid}@example.com", first_name="Ann") for rid in record_ids))


async def test_upsert_request_matches_the_spec() -> None:
    """Batch upsert posts to the documented path with a Bearer token and a body the spec accepts."""
    provider, wire = hubspot(lambda request: answer(200, _batch([_object("101", "r1")])))
    results = await provider.deliver(_upserts("r1"))
    await provider.aclose()
    request = wire.requests[0]
    assert (request.method, str(request.url)) == (
        "POST", "https://api.hubapi.com/crm/v3/objects/contacts/batch/upsert")
    assert request.headers["Authorization"] == "Bearer pat-na1-test"
    body = json.loads(request.content)
    validator = spec_validator(SPEC, "BatchInputSimplePublicObjectBatchInputUpsert",
                               closed=("BatchInputSimplePublicObjectBatchInputUpsert",
                                       "SimplePublicObjectBatchInputUpsert"))
    validator.validate(body)
    assert body["inputs"][0]["idProperty"] == "contactsync_id"
    assert body["inputs"][0]["id"] == "r1"
    assert results[0].ok and results[0].provider_id == "101"


async def test_results_are_matched_by_id_property_not_position() -> None:
    """Results that come back in another order still reach the right records."""
    body = _batch([_object("202", "r2"), _object("101", "r1")])
    provider, _ = hubspot(lambda request: answer(200, body))
    results = await provider.deliver(_upserts("r1", "r2"))
    await provider.aclose()
    assert [(r.record_id, r.provider_id) for r in results] == [("r1", "101"), ("r2", "202")]


async def test_207_errors_are_attributed_by_context() -> None:
    """A 207 fails only the inputs its errors name; one named by nobody is retryable, not lost."""
    errors = [_error("VALIDATION_ERROR", ["r2"]),
              {**_error("INTERNAL_ERROR", []), "status": "500",
               "errors": [{"message": "try later", "context": {"id": ["r4"]}}]}]
    body = _batch([_object("101", "r1")], errors)
    provider, _ = hubspot(lambda request: answer(207, body))
    results = await provider.deliver(_upserts("r1", "r2", "r3", "r4"))
    await provider.aclose()
    assert results[0].ok and results[0].provider_id == "101"
    assert type(results[1].error) is PermanentError and results[1].error.code == "VALIDATION_ERROR"
    assert type(results[2].error) is RetryableError and results[2].error.code == "unattributed"
    assert type(results[3].error) is RetryableError and results[3].error.status == 500


async def test_an_email_conflict_retries_only_for_a_record_that_replaces_another() -> None:
    """"Contact already exists" is permanent, unless the record replaces another (a primary-key
    update) whose delete is on its way: then it is retried."""
    conflict = {**_error("CONFLICT", ["r1", "r30"]), "message": "Contact already exists. Existing ID: 101"}
    provider, _ = hubspot(lambda request: answer(207, _batch([], [conflict])))
    plain, replacing = _upserts("r1", "r30")
    results = await provider.deliver([plain, replacing.model_copy(update={"replaces": "r3"})])
    await provider.aclose()
    assert type(results[0].error) is PermanentError and results[0].error.code == "CONFLICT"
    assert type(results[1].error) is RetryableError and results[1].error.code == "CONFLICT"
    assert "r3" in str(results[1].error)


async def test_delete_reads_then_archives() -> None:
    """A delete reads HubSpot's ids by the id property, archives the found ones, and not found is done."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch/read"):
            return answer(207, _batch([_object("101", "r1")], [_error("OBJECT_NOT_FOUND", ["r2"])]))
        return httpx.Response(204)

    provider, wire = hubspot(handle)
    results = await provider.deliver(records(MAPPER, change("r1", "delete"), change("r2", "delete")))
    await provider.aclose()
    assert [r.url.path.rsplit("/", 1)[-1] for r in wire.requests] == ["read", "archive"]
    read, = wire.bodies("/batch/read")
    spec_validator(SPEC, "BatchReadInputSimplePublicObjectId",
                   closed=("BatchReadInputSimplePublicObjectId", "SimplePublicObjectId")).validate(read)
    assert read["idProperty"] == "contactsync_id" and read["properties"] == ["contactsync_id"]
    assert [i["id"] for i in read["inputs"]] == ["r1", "r2"]
    archive, = wire.bodies("/batch/archive")
    spec_validator(SPEC, "BatchInputSimplePublicObjectId").validate(archive)
    assert archive == {"inputs": [{"id": "101"}]}
    assert [(r.ok, r.provider_id) for r in results] == [(True, "101"), (True, None)]


async def test_upsert_result_carries_the_object_id_to_keep() -> None:
    """The object id of an upsert answer is what the record lives under, for the version guard row."""
    provider, _ = hubspot(lambda request: answer(200, _batch([_object("101", "r1")])))
    results = await provider.deliver(_upserts("r1"))
    await provider.aclose()
    assert results[0].provider_ids == ("101",)


async def test_delete_by_kept_ids_archives_without_reading() -> None:
    """Deletes whose object ids the guard row kept cost one archive request and no read; a record
    whose ids are not known is read first, and its id goes in the same archive request."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch/read"):
            return answer(200, _batch([_object("303", "r3")]))
        return httpx.Response(204)

    kept = [record.model_copy(update={"provider_ids": ids})
            for record, ids in zip(records(MAPPER, change("r1", "delete"), change("r2", "delete")),
                                   [("101",), ("202",)], strict=True)]
    provider, wire = hubspot(handle)
    results = await provider.deliver(kept)
    assert [r.url.path.rsplit("/", 1)[-1] for r in wire.requests] == ["archive"]
    assert wire.bodies("/batch/archive") == [{"inputs": [{"id": "101"}, {"id": "202"}]}]
    assert [(r.ok, r.provider_id, r.provider_ids) for r in results] == [(True, "101", ()), (True, "202", ())]

    wire.requests.clear()
    results = await provider.deliver([kept[0], *records(MAPPER, change("r3", "delete"))])
    await provider.aclose()
    assert [r.url.path.rsplit("/", 1)[-1] for r in wire.requests] == ["read", "archive"]
    assert [i["id"] for i in wire.bodies("/batch/read")[0]["inputs"]] == ["r3"]
    assert wire.bodies("/batch/archive") == [{"inputs": [{"id": "101"}, {"id": "303"}]}]
    assert [(r.ok, r.provider_ids) for r in results] == [(True, ()), (True, ())]


async def test_delete_of_nothing_found_sends_no_archive() -> None:
    """When no record exists any more, no archive call is made and every delete is done."""
    body = _batch([], [_error("OBJECT_NOT_FOUND", ["r1"])])
    provider, wire = hubspot(lambda request: answer(207, body))
    results = await provider.deliver(records(MAPPER, change("r1", "delete")))
    await provider.aclose()
    assert len(wire.requests) == 1 and results[0].ok


async def test_delete_with_an_unattributed_read_error_is_retryable() -> None:
    """A read error that names no input keeps records that were not found from counting as deleted."""
    body = _batch([_object("101", "r1")], [_error("INTERNAL_ERROR", [])])
    provider, _ = hubspot(lambda request: answer(207, body) if "read" in request.url.path
                          else httpx.Response(204))
    results = await provider.deliver(records(MAPPER, change("r1", "delete"), change("r2", "delete")))
    await provider.aclose()
    assert results[0].ok
    assert type(results[1].error) is RetryableError


async def test_failed_archive_fails_the_deletes() -> None:
    """A 5xx from batch/archive is a retryable error for every delete of the batch."""
    provider, _ = hubspot(lambda request: answer(200, _batch([_object("101", "r1")]))
                          if "read" in request.url.path else answer(503))
    results = await provider.deliver(records(MAPPER, change("r1", "delete")))
    await provider.aclose()
    assert type(results[0].error) is RetryableError and results[0].error.status == 503


async def test_mixed_batch_keeps_input_order() -> None:
    """Upserts and deletes in one batch come back one result per record, in input order."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/upsert"):
            return answer(200, _batch([_object("103", "r3"), _object("101", "r1")]))
        if path.endswith("/read"):
            return answer(200, _batch([_object("102", "r2")]))
        return httpx.Response(204)

    batch = [*_upserts("r1"), *records(MAPPER, change("r2", "delete")), *_upserts("r3")]
    provider, _ = hubspot(handle)
    results = await provider.deliver(batch)
    await provider.aclose()
    assert [(r.record_id, r.provider_id) for r in results] == [("r1", "101"), ("r2", "102"), ("r3", "103")]


async def test_invalid_payload_fails_only_its_record() -> None:
    """A payload that is not a HubSpot input is that record's permanent error; the rest are sent."""
    bad = _upserts("r2")[0].model_copy(update={"payload": {"properties": {"email": "x"}}})
    provider, wire = hubspot(lambda request: answer(200, _batch([_object("101", "r1")])))
    results = await provider.deliver([*_upserts("r1"), bad])
    await provider.aclose()
    assert results[0].ok
    assert type(results[1].error) is PermanentError and results[1].error.code == "invalid_payload"
    assert len(wire.bodies("/upsert")[0]["inputs"]) == 1
