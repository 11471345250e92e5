"""The Mailchimp simulator over real HTTP: batch subscribe, member calls, batch operations, auth and limits."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from typing import Any

import httpx

from pipeline.dev.simulators import RunningSimulators

BATCH = "/lists/contacts"


def member(record_id: str, version: int, email: str | None = None, **merge_fields: str) -> dict[str, Any]:
    fields = {"FNAME": "Ann", "CSID": record_id, "CSVERSION": str(version), **merge_fields}
    return {"email_address": email or f"{record_id}@example.com", "status": "subscribed", "merge_fields": fields}


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()  # noqa: S324


async def test_batch_with_an_invalid_email_reports_it_in_a_200_body(mailchimp: httpx.AsyncClient) -> None:
    """An invalid address becomes one errors[] entry of a 200 answer; the valid members are created."""
    body = {"members": [member("r1", 1), member("r2", 1, email="not-an-address")], "update_existing": True}
    response = await mailchimp.post(BATCH, json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["total_created"] == 1 and answer["error_count"] == 1 and answer["total_updated"] == 0
    assert answer["errors"][0]["email_address"] == "not-an-address"
    assert answer["errors"][0]["error_code"] == "ERROR_GENERIC" and answer["errors"][0]["field"] == "email_address"
    created = answer["new_members"][0]
    assert created["id"] == md5("R1@example.com") and created["merge_fields"]["CSVERSION"] == "1"
    records = (await mailchimp.get("/_sim/records")).json()["records"]
    assert set(records) == {"r1"} and records["r1"]["native_id"] == md5("r1@example.com")


async def test_unknown_merge_field_fails_that_member(mailchimp: httpx.AsyncClient) -> None:
    """A merge tag the audience lacks is a per-member error naming merge_fields."""
    response = await mailchimp.post(BATCH, json={"members": [member("r1", 1, SHOE="9")]})
    error = response.json()["errors"][0]
    assert response.status_code == 200 and error["field"] == "merge_fields" and "SHOE" in error["field_message"]


async def test_update_existing_decides_between_conflict_and_update(mailchimp: httpx.AsyncClient) -> None:
    """Without update_existing a known member is ERROR_CONTACT_EXISTS; with it the member is updated."""
    await mailchimp.post(BATCH, json={"members": [member("r1", 1)]})
    refused = (await mailchimp.post(BATCH, json={"members": [member("r1", 2)]})).json()
    assert refused["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    updated = (await mailchimp.post(BATCH, json={"members": [member("r1", 2)], "update_existing": True})).json()
    assert updated["total_updated"] == 1 and updated["updated_members"][0]["merge_fields"]["CSVERSION"] == "2"
    history = (await mailchimp.get("/_sim/records/r1/history")).json()["history"]
    assert [write["version"] for write in history] == ["1", "2"]


async def test_member_put_get_delete(mailchimp: httpx.AsyncClient) -> None:
    """PUT creates or updates by hash, GET shows it, DELETE archives it (204), a second DELETE is a 404 problem."""
    email = "Ann@Example.com"
    path = f"{BATCH}/members/{md5(email)}"
    body = {"email_address": email, "status_if_new": "subscribed", "merge_fields": {"CSID": "r1", "CSVERSION": "3"}}
    assert (await mailchimp.put(path, json=body)).json()["status"] == "subscribed"
    assert (await mailchimp.get(path)).json()["merge_fields"]["CSID"] == "r1"
    assert (await mailchimp.delete(path)).status_code == 204
    assert (await mailchimp.get(path)).json()["status"] == "archived"
    gone = await mailchimp.delete(path)
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("application/problem+json")
    problem = gone.json()
    assert set(problem) == {"type", "title", "status", "detail", "instance"} and problem["status"] == 404
    history = (await mailchimp.get("/_sim/records/r1/history")).json()["history"]
    assert [write["operation"] for write in history] == ["create", "archive"]


async def test_patch_with_a_new_address_moves_the_member(mailchimp: httpx.AsyncClient) -> None:
    """PATCH with a new email moves the member to the new hash; onto an existing member it is 400 Member Exists."""
    await mailchimp.post(BATCH, json={"members": [member("r1", 1), member("r2", 1)]})
    moved = await mailchimp.patch(f"{BATCH}/members/{md5('r1@example.com')}", json={"email_address": "new@example.com"})
    assert moved.status_code == 200 and moved.json()["id"] == md5("new@example.com")
    assert moved.json()["merge_fields"]["CSID"] == "r1"
    assert (await mailchimp.get(f"{BATCH}/members/{md5('r1@example.com')}")).json()["status"] == "archived"
    record = (await mailchimp.get("/_sim/records/r1")).json()["record"]
    assert record["native_id"] == md5("new@example.com") and record["archived"] is False
    clash = await mailchimp.patch(f"{BATCH}/members/{md5('r2@example.com')}", json={"email_address": "new@example.com"})
    assert clash.status_code == 400 and clash.json()["title"] == "Member Exists"
    gone = await mailchimp.patch(f"{BATCH}/members/{md5('nobody@example.com')}", json={"status": "unsubscribed"})
    assert gone.status_code == 404


async def test_put_with_mismatched_hash_or_bad_schema_is_invalid_resource(mailchimp: httpx.AsyncClient) -> None:
    """A body whose address does not hash to the URL, or breaks the schema, is a 400 Invalid Resource problem."""
    body = {"email_address": "a@example.com", "status_if_new": "subscribed"}
    response = await mailchimp.put(f"{BATCH}/members/{md5('b@example.com')}", json=body)
    assert response.status_code == 400 and response.json()["title"] == "Invalid Resource"
    response = await mailchimp.put(f"{BATCH}/members/{md5('a@example.com')}", json={**body, "status_if_new": "maybe"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "status_if_new"
    response = await mailchimp.post(BATCH, json={"members": [member(f"r{n}", 1) for n in range(501)]})
    assert response.status_code == 400


async def test_wrong_api_key_is_401(sims: RunningSimulators) -> None:
    """Basic auth with a wrong key is answered with the API Key Invalid problem."""
    async with httpx.AsyncClient(base_url=sims.mailchimp.base_url, auth=("anyone", "wrong-us1")) as client:
        response = await client.post(BATCH, json={"members": []})
    assert response.status_code == 401 and response.json()["title"] == "API Key Invalid"


async def test_eleventh_simultaneous_connection_gets_429(mailchimp: httpx.AsyncClient) -> None:
    """With 11 requests in flight at once, exactly one is refused 429 Too Many Requests."""
    await mailchimp.put("/_sim/config", json={"latency": {"fixed_ms": 400}})
    responses = await asyncio.gather(*(mailchimp.get(f"{BATCH}/members/{md5(f'{n}@x.io')}") for n in range(11)))
    throttled = [response for response in responses if response.status_code == 429]
    assert len(throttled) == 1 and sorted({r.status_code for r in responses}) == [404, 429]
    assert throttled[0].json()["title"] == "Too Many Requests"
    assert throttled[0].json()["detail"] == "You have exceeded the limit of 10 simultaneous connections."


async def _finished(mailchimp: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    """The listing of batch ``batch_id`` (id, status, results URL only) once it is finished (≤ 10 s)."""
    fields = {"fields": "batches.id,batches.status,batches.response_body_url", "count": "1000"}
    for _ in range(100):
        listed = (await mailchimp.get("/batches", params=fields)).json()
        (batch,) = [batch for batch in listed["batches"] if batch["id"] == batch_id]
        if batch["status"] == "finished":
            return batch
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish")


def _results(archive: bytes) -> dict[str, dict[str, Any]]:
    """A results archive's results by operation id."""
    found: dict[str, dict[str, Any]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for item in tar.getmembers():
            content = tar.extractfile(item)
            assert content is not None
            found.update({result["operation_id"]: result for result in json.loads(content.read())})
    return found


async def test_batch_operations_run_later_like_direct_requests(mailchimp: httpx.AsyncClient) -> None:
    """POST /batches answers pending; its operations then run as the direct calls do (a move, a 404,
    Member Exists, a guard GET, an archive, a body that breaks the spec), the listing gives only the
    fields asked for, the results archive downloads without auth, and the request log names the
    records the batch carried and its operations, not the download."""
    await mailchimp.post(BATCH, json={"members": [member("r1", 1), member("r2", 1), member("r3", 1)]})
    moved = {"email_address": "new@example.com", "merge_fields": {"CSID": "r1", "CSVERSION": "2"}}
    operations = [
        {"method": "PATCH", "path": f"{BATCH}/members/{md5('r1@example.com')}", "operation_id": "move",
         "body": json.dumps(moved)},
        {"method": "PATCH", "path": f"{BATCH}/members/{md5('nobody@example.com')}", "operation_id": "missing",
         "body": json.dumps({"status": "unsubscribed"})},
        {"method": "PATCH", "path": f"{BATCH}/members/{md5('r2@example.com')}", "operation_id": "taken",
         "body": json.dumps({"email_address": "r3@example.com"})},
        {"method": "GET", "path": f"{BATCH}/members/{md5('r2@example.com')}", "operation_id": "guard",
         "params": {"fields": "status,merge_fields.CSID"}},
        {"method": "DELETE", "path": f"{BATCH}/members/{md5('r3@example.com')}", "operation_id": "archive"},
        {"method": "PATCH", "path": f"{BATCH}/members/{md5('r2@example.com')}", "operation_id": "invalid",
         "body": json.dumps({"status": "maybe"})},
    ]
    started = await mailchimp.post("/batches", json={"operations": operations})
    assert started.status_code == 200 and started.json()["status"] == "pending"
    batch = await _finished(mailchimp, started.json()["id"])
    assert set(batch) == {"id", "status", "response_body_url"}
    async with httpx.AsyncClient() as storage:
        download = await storage.get(batch["response_body_url"])
    assert download.status_code == 200 and "Authorization" not in download.request.headers
    results = _results(download.content)
    statuses = {operation_id: result["status_code"] for operation_id, result in results.items()}
    assert statuses == {"move": 200, "missing": 404, "taken": 400, "guard": 200, "archive": 204, "invalid": 400}
    assert json.loads(results["move"]["response"])["id"] == md5("new@example.com")
    assert json.loads(results["taken"]["response"])["title"] == "Member Exists"
    assert json.loads(results["guard"]["response"])["merge_fields"]["CSID"] == "r2"
    assert results["archive"]["response"] == ""
    held = (await mailchimp.get("/_sim/records")).json()["records"]
    assert held["r1"]["native_id"] == md5("new@example.com") and held["r3"]["archived"] is True
    log = (await mailchimp.get("/_sim/requests")).json()["requests"]
    calls = [(r["method"], r["path"]) for r in log]
    after = calls[calls.index(("POST", "/3.0/batches")) + 1 :]
    assert after and set(after) == {("GET", "/3.0/batches")}  # the polls; the download is not the API
    (posted,) = [r for r in log if r["path"] == "/3.0/batches" and r["method"] == "POST"]
    assert posted["operations"] == {"PATCH": 4, "GET": 1, "DELETE": 1}
    assert sorted(ref["record_id"] for ref in posted["records"]) == ["r1", "r2", "r2", "r3"]


async def test_batches_are_validated_and_limited_like_any_request(mailchimp: httpx.AsyncClient) -> None:
    """A body that breaks BatchesBody is a 400 Invalid Resource problem; POST and GET /batches
    count against the requests-per-second window like any API request."""
    refused = await mailchimp.post("/batches", json={"operations": [{"path": BATCH}]})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "operations/0"
    await mailchimp.put("/_sim/config", json={"requests_per_second": 1})
    await asyncio.sleep(1.0)
    assert (await mailchimp.post("/batches", json={"operations": []})).status_code == 200
    assert (await mailchimp.get("/batches")).status_code == 429
