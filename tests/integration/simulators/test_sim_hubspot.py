"""The HubSpot simulator over real HTTP: contract, platform rules, limits and inspection."""

from __future__ import annotations

from typing import Any

import httpx

from pipeline.dev.simulators import RunningSimulators

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
READ = "/crm/v3/objects/contacts/batch/read"
ARCHIVE = "/crm/v3/objects/contacts/batch/archive"


def contact(record_id: str, version: int, **properties: str) -> dict[str, Any]:
    props = {"email": f"{record_id}@example.com", "firstname": "Ann", "contactsync_version": str(version)}
    return {"id": record_id, "idProperty": "contactsync_id", "properties": {**props, **properties}}


async def test_valid_upsert_is_stored_with_history(hubspot: httpx.AsyncClient) -> None:
    """A valid batch upsert answers 200 with new contacts, and /_sim/ shows their state and history."""
    response = await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1), contact("r2", 1)]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE" and [result["new"] for result in body["results"]] == [True, True]
    assert body["results"][0]["properties"]["contactsync_id"] == "r1"
    assert response.headers["X-HubSpot-RateLimit-Max"] == "100"

    await hubspot.post(UPSERT, json={"inputs": [contact("r1", 2, lastname="Lee")]})
    records = (await hubspot.get("/_sim/records")).json()["records"]
    assert records["r1"]["version"] == "2" and records["r1"]["fields"]["lastname"] == "Lee"
    assert records["r1"]["archived"] is False and records["r2"]["version"] == "1"
    history = (await hubspot.get("/_sim/records/r1/history")).json()["history"]
    assert [(write["operation"], write["version"]) for write in history] == [("create", "1"), ("update", "2")]
    assert (await hubspot.get("/_sim/records/r1")).json()["record"] == records["r1"]
    assert (await hubspot.get("/_sim/records/nobody")).status_code == 404


async def test_history_only_grows(hubspot: httpx.AsyncClient) -> None:
    """Each write appends to a record's history and never rewrites what came before."""
    snapshots = []
    for version in (1, 2, 3):
        await hubspot.post(UPSERT, json={"inputs": [contact("r1", version)]})
        snapshots.append((await hubspot.get("/_sim/records/r1/history")).json()["history"])
    assert [len(snapshot) for snapshot in snapshots] == [1, 2, 3]
    assert snapshots[2][:2] == snapshots[1] and snapshots[1][:1] == snapshots[0]


async def test_an_older_version_written_over_a_newer_one_is_counted(hubspot: httpx.AsyncClient) -> None:
    """version_regressions counts writes whose version is older than the one they overwrote."""
    for version in (9, 10, 3):
        await hubspot.post(UPSERT, json={"inputs": [contact("r1", version)]})
    record = (await hubspot.get("/_sim/records")).json()["records"]["r1"]
    assert record["version"] == "3" and record["version_regressions"] == 1


async def test_schema_violations_get_hubspot_validation_errors(hubspot: httpx.AsyncClient) -> None:
    """Bodies that break the OpenAPI schema are refused 400 with HubSpot's Error body."""
    bad_bodies = [
        {"inputs": [{"id": "r1", "idProperty": "contactsync_id", "properties": {"firstname": 7}}]},
        {"records": []},
        {"inputs": [{"idProperty": "contactsync_id", "properties": {}}]},
        {"inputs": "r1"},
    ]
    for bad in bad_bodies:
        response = await hubspot.post(UPSERT, json=bad)
        assert response.status_code == 400, bad
        error = response.json()
        assert error["category"] == "VALIDATION_ERROR" and error["status"] == "error"
        assert error["correlationId"] and error["message"].startswith("Invalid input JSON")


async def test_extra_top_level_fields_pass_because_the_spec_allows_them(hubspot: httpx.AsyncClient) -> None:
    """The spec sets no additionalProperties: false, so unknown top-level keys are accepted."""
    response = await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1)], "junk": True})
    assert response.status_code == 200


async def test_unknown_property_and_bad_email_are_refused(hubspot: httpx.AsyncClient) -> None:
    """Properties the portal lacks, and invalid emails, fail the batch with PROPERTY_DOESNT_EXIST / INVALID_EMAIL."""
    response = await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1, favourite_colour="red")]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    response = await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1, email="not-an-email")]})
    assert response.status_code == 400 and "INVALID_EMAIL" in response.json()["message"]
    assert (await hubspot.get("/_sim/records")).json()["records"] == {}


async def test_batch_rules_size_duplicates_and_id_property(hubspot: httpx.AsyncClient) -> None:
    """Over 100 inputs, two inputs for one record, or a non-unique idProperty are refused 400."""
    too_many = {"inputs": [contact(f"r{n}", 1) for n in range(101)]}
    assert (await hubspot.post(UPSERT, json=too_many)).status_code == 400
    duplicates = await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1), contact("r1", 2)]})
    assert duplicates.status_code == 400 and "Duplicate IDs" in duplicates.json()["message"]
    by_name = {"inputs": [{"id": "Ann", "idProperty": "firstname", "properties": {}}]}
    assert "non-unique" in (await hubspot.post(UPSERT, json=by_name)).json()["message"]
    by_email = {"inputs": [{"id": "a@example.com", "idProperty": "email", "properties": {"firstname": "A"}}]}
    assert (await hubspot.post(UPSERT, json=by_email)).status_code == 200


async def test_two_inputs_meeting_one_existing_record_are_refused(hubspot: httpx.AsyncClient) -> None:
    """An input by email and one by contactsync_id that resolve to the same contact fail the batch."""
    await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1)]})
    by_email = {"id": "r1@example.com", "idProperty": "email", "properties": {"firstname": "B"}}
    response = await hubspot.post(UPSERT, json={"inputs": [contact("r1", 2), by_email]})
    assert response.status_code == 400


async def test_email_taken_by_another_contact_is_a_per_input_conflict(hubspot: httpx.AsyncClient) -> None:
    """Upserting r2 with r1's email yields 207 with a CONFLICT error for r2 only."""
    await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1)]})
    response = await hubspot.post(UPSERT, json={"inputs": [contact("r2", 1, email="r1@example.com"), contact("r3", 1)]})
    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 1 and body["errors"][0]["category"] == "CONFLICT"
    assert body["errors"][0]["context"] == {"ids": ["r2"]}
    assert [result["properties"]["contactsync_id"] for result in body["results"]] == ["r3"]


async def test_read_by_id_property_then_archive(hubspot: httpx.AsyncClient) -> None:
    """batch/read resolves contactsync ids (207 for missing ones) and batch/archive marks the record archived."""
    await hubspot.post(UPSERT, json={"inputs": [contact("r1", 1)]})
    ids = [{"id": "r1"}, {"id": "nobody"}]
    read_body = {"idProperty": "contactsync_id", "inputs": ids, "properties": [], "propertiesWithHistory": []}
    response = await hubspot.post(READ, json=read_body)
    assert response.status_code == 207
    body = response.json()
    hubspot_id = body["results"][0]["id"]
    assert body["results"][0]["properties"]["contactsync_id"] == "r1"
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"]["ids"] == ["nobody"]

    assert (await hubspot.post(ARCHIVE, json={"inputs": [{"id": hubspot_id}]})).status_code == 204
    record = (await hubspot.get("/_sim/records")).json()["records"]["r1"]
    assert record["archived"] is True
    assert (await hubspot.post(READ, json=read_body)).json()["results"] == []
    archived = await hubspot.post(READ, params={"archived": "true"}, json=read_body)
    assert archived.json()["results"][0]["archived"] is True


async def test_missing_or_wrong_token_is_401(sims: RunningSimulators) -> None:
    """Without the private app token HubSpot answers 401 INVALID_AUTHENTICATION."""
    async with httpx.AsyncClient(base_url=sims.hubspot.base_url) as client:
        response = await client.post(UPSERT, json={"inputs": []})
        assert response.status_code == 401 and response.json()["category"] == "INVALID_AUTHENTICATION"
        response = await client.post(UPSERT, json={"inputs": []}, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401


async def test_ten_second_window_answers_the_documented_429(hubspot: httpx.AsyncClient) -> None:
    """After requests_per_10s admitted requests, the next gets the TEN_SECONDLY_ROLLING body verbatim."""
    await hubspot.put("/_sim/config", json={"requests_per_10s": 3})
    statuses = [(await hubspot.post(UPSERT, json={"inputs": [contact("r1", n)]})).status_code for n in range(3)]
    throttled = await hubspot.post(UPSERT, json={"inputs": [contact("r1", 9)]})
    assert statuses == [200, 200, 200] and throttled.status_code == 429
    body = throttled.json()
    assert body == {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": body["correlationId"],
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    assert throttled.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert throttled.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert (await hubspot.get("/_sim/records")).json()["records"]["r1"]["version"] == "2"


async def test_daily_cap_answers_the_daily_429(hubspot: httpx.AsyncClient) -> None:
    """When the daily cap is used up HubSpot answers 429 with policyName DAILY."""
    await hubspot.put("/_sim/config", json={"daily_limit": 1})
    assert (await hubspot.post(UPSERT, json={"inputs": []})).status_code == 200
    response = await hubspot.post(UPSERT, json={"inputs": []})
    assert response.status_code == 429
    assert response.json()["policyName"] == "DAILY"
    assert response.json()["message"] == "You have reached your daily limit."
    assert response.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
