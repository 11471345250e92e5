"""Latency, injected faults, run-time config and the request log, shared by all three simulators."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
LEADS = "/services/data/v62.0/composite/sobjects/Lead/ContactSync_Id__c"


def inputs(count: int, version: int = 1) -> dict[str, Any]:
    return {
        "inputs": [
            {"id": f"r{n}", "idProperty": "contactsync_id", "properties": {"contactsync_version": str(version)}}
            for n in range(count)
        ]
    }


async def run_sequence(hubspot: httpx.AsyncClient) -> list[tuple[int, int]]:
    """Ten upserts of ten inputs: (status, failed inputs) for each."""
    outcomes = []
    for version in range(10):
        response = await hubspot.post(UPSERT, json=inputs(10, version))
        failed = len(response.json().get("errors", [])) if response.status_code in (200, 207) else -1
        outcomes.append((response.status_code, failed))
    return outcomes


async def test_seeded_faults_repeat_exactly(hubspot: httpx.AsyncClient) -> None:
    """The same seed and the same requests meet the same faults and partial failures, after a reset too."""
    faults = {"seed": 42, "server_error": 0.2, "throttle": 0.2, "partial_failure": 0.3}
    await hubspot.put("/_sim/config", json={"faults": faults})
    first = await run_sequence(hubspot)
    await hubspot.post("/_sim/reset")
    second = await run_sequence(hubspot)
    assert first == second
    statuses = {status for status, _ in first}
    assert {503, 429} & statuses and 207 in statuses
    await hubspot.put("/_sim/config", json={"faults": {**faults, "seed": 7}})
    await hubspot.post("/_sim/reset")
    assert await run_sequence(hubspot) != first


async def test_server_error_and_throttle_faults_use_platform_bodies(
    hubspot: httpx.AsyncClient, salesforce: httpx.AsyncClient
) -> None:
    """An injected 5xx carries the platform's error body; an injected throttle is the platform's throttle answer."""
    await hubspot.put("/_sim/config", json={"faults": {"server_error": 1.0}})
    failed = await hubspot.post(UPSERT, json=inputs(1))
    assert failed.status_code == 503 and failed.json()["status"] == "error" and failed.json()["correlationId"]
    await hubspot.put("/_sim/config", json={"faults": {"server_error": 0.0, "throttle": 1.0}})
    assert (await hubspot.post(UPSERT, json=inputs(1))).json()["policyName"] == "TEN_SECONDLY_ROLLING"
    await salesforce.put("/_sim/config", json={"faults": {"throttle": 1.0}})
    throttled = await salesforce.patch(LEADS, json={"records": []})
    assert throttled.status_code == 403 and throttled.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert (await hubspot.get("/_sim/records")).json()["records"] == {}


async def test_timeout_fault_holds_then_504_or_drops(hubspot: httpx.AsyncClient) -> None:
    """A timeout fault holds the request for timeout_hold_s, then answers 504 or closes the connection."""
    await hubspot.put("/_sim/config", json={"faults": {"timeout": 1.0, "timeout_hold_s": 0.3}})
    started = time.monotonic()
    response = await hubspot.post(UPSERT, json=inputs(1))
    assert response.status_code == 504 and time.monotonic() - started >= 0.3
    await hubspot.put("/_sim/config", json={"faults": {"timeout_mode": "drop"}})
    with pytest.raises(httpx.RemoteProtocolError):
        await hubspot.post(UPSERT, json=inputs(1))
    outcomes = [entry["outcome"] for entry in (await hubspot.get("/_sim/requests")).json()["requests"]]
    assert outcomes == ["fault:timeout", "dropped"]


async def test_drop_after_write_applies_the_request_and_loses_the_answer(hubspot: httpx.AsyncClient) -> None:
    """In drop_after_write mode the platform holds what the request wrote, but the client never hears
    back: the outcome a client cannot know."""
    faults = {"timeout": 1.0, "timeout_hold_s": 0.1, "timeout_mode": "drop_after_write"}
    await hubspot.put("/_sim/config", json={"faults": faults})
    with pytest.raises(httpx.RemoteProtocolError):
        await hubspot.post(UPSERT, json=inputs(2))
    assert sorted((await hubspot.get("/_sim/records")).json()["records"]) == ["r0", "r1"]
    (entry,) = (await hubspot.get("/_sim/requests")).json()["requests"]
    assert entry["outcome"] == "dropped" and [r["record_id"] for r in entry["records"]] == ["r0", "r1"]


async def test_latency_delays_every_answer(hubspot: httpx.AsyncClient) -> None:
    """A fixed latency of 200 ms makes each answer take at least that long."""
    await hubspot.put("/_sim/config", json={"latency": {"fixed_ms": 200, "jitter_ms": 50}})
    started = time.monotonic()
    assert (await hubspot.post(UPSERT, json=inputs(1))).status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_partial_failures_of_each_platform(
    hubspot: httpx.AsyncClient, salesforce: httpx.AsyncClient, mailchimp: httpx.AsyncClient
) -> None:
    """partial_failure=1 fails every record in the platform's own per-record way, and stores nothing."""
    for client in (hubspot, salesforce, mailchimp):
        await client.put("/_sim/config", json={"faults": {"partial_failure": 1.0}})
    hubspot_answer = await hubspot.post(UPSERT, json=inputs(2))
    assert hubspot_answer.status_code == 207 and hubspot_answer.json()["numErrors"] == 2
    lead = {"attributes": {"type": "Lead"}, "ContactSync_Id__c": "r1", "LastName": "L", "Company": "C"}
    sf_answer = (await salesforce.patch(LEADS, json={"records": [lead]})).json()
    assert sf_answer[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    member = {"email_address": "a@example.com", "status": "subscribed", "merge_fields": {"CSID": "r1"}}
    mc_answer = (await mailchimp.post("/lists/contacts", json={"members": [member]})).json()
    assert mc_answer["error_count"] == 1 and mc_answer["total_created"] == 0
    for client in (hubspot, salesforce, mailchimp):
        assert (await client.get("/_sim/records")).json()["records"] == {}
        assert (await client.get("/_sim/requests")).json()["requests"][-1]["outcome"] == "partial"


async def test_config_changes_are_validated_and_merged(hubspot: httpx.AsyncClient) -> None:
    """PUT /_sim/config merges a partial change, and refuses unknown keys or bad values with 400."""
    config = (await hubspot.put("/_sim/config", json={"faults": {"server_error": 0.5}})).json()
    assert config["faults"]["server_error"] == 0.5 and config["requests_per_10s"] == 100
    assert (await hubspot.put("/_sim/config", json={"faults": {"server_error": 2}})).status_code == 400
    assert (await hubspot.put("/_sim/config", json={"nonsense": 1})).status_code == 400
    assert (await hubspot.get("/_sim/config")).json()["faults"]["server_error"] == 0.5


async def test_request_log_names_records_versions_and_times(hubspot: httpx.AsyncClient) -> None:
    """/_sim/requests lists each API request with its time, status and the records and versions it carried."""
    before = time.time()
    await hubspot.post(UPSERT, json=inputs(3, version=5))
    await hubspot.post(UPSERT, json={"inputs": [{"bad": True}]})
    entries = (await hubspot.get("/_sim/requests")).json()["requests"]
    assert [entry["status"] for entry in entries] == [200, 400]
    first = entries[0]
    assert first["method"] == "POST" and first["path"] == UPSERT and first["record_count"] == 3
    assert first["records"][0] == {"record_id": "r0", "version": "5"}
    assert before <= first["received_at"] <= first["answered_at"] <= time.time()
    newer = (await hubspot.get("/_sim/requests", params={"after": first["seq"]})).json()["requests"]
    assert [entry["seq"] for entry in newer] == [entries[1]["seq"]]
    await hubspot.post("/_sim/reset")
    assert (await hubspot.get("/_sim/requests")).json()["requests"] == []
