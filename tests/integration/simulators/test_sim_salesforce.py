"""The Salesforce simulator over real HTTP: OAuth, collections upsert/delete, lookup query, limits."""

from __future__ import annotations

from typing import Any

import httpx

from pipeline.dev.simulators import RunningSimulators

DATA = "/services/data/v62.0"
UPSERT_LEADS = f"{DATA}/composite/sobjects/Lead/ContactSync_Id__c"
UPSERT_CONTACTS = f"{DATA}/composite/sobjects/Contact/ContactSync_Id__c"


def lead(record_id: str, version: int, **fields: Any) -> dict[str, Any]:
    base = {"attributes": {"type": "Lead"}, "ContactSync_Id__c": record_id, "ContactSync_Version__c": version}
    return {**base, "LastName": "Lee", "Company": "Acme", "Email": f"{record_id}@example.com", **fields}


async def test_token_grants_and_instance_url(sims: RunningSimulators) -> None:
    """Password and client-credentials grants return a token and instance_url = the simulator's base URL."""
    config = sims.salesforce.config
    async with httpx.AsyncClient(base_url=sims.salesforce.base_url) as client:
        secret = {"client_id": config.client_id, "client_secret": config.client_secret}
        granted = await client.post("/services/oauth2/token", data={"grant_type": "client_credentials", **secret})
        assert granted.status_code == 200
        assert granted.json()["instance_url"] == sims.salesforce.base_url
        assert granted.json()["token_type"] == "Bearer"
        wrong = {"grant_type": "password", **secret, "username": config.username, "password": "nope"}
        refused = await client.post("/services/oauth2/token", data=wrong)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_calls_without_a_valid_session_get_invalid_session_id(sims: RunningSimulators) -> None:
    """A missing or unknown Bearer token is answered 401 INVALID_SESSION_ID as a JSON array."""
    async with httpx.AsyncClient(base_url=sims.salesforce.base_url) as client:
        response = await client.patch(UPSERT_LEADS, json={"records": []}, headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert response.headers["WWW-Authenticate"] == "Token"


async def test_upsert_creates_then_updates_in_order(salesforce: httpx.AsyncClient) -> None:
    """Collections upsert answers UpsertResult[] in order, created true then false, with Lead ids 00Q."""
    first = await salesforce.patch(UPSERT_LEADS, json={"allOrNone": False, "records": [lead("r1", 1), lead("r2", 1)]})
    assert first.status_code == 200
    results = first.json()
    assert [(item["success"], item["created"]) for item in results] == [(True, True), (True, True)]
    assert all(item["id"].startswith("00Q") and len(item["id"]) == 18 for item in results)
    second = await salesforce.patch(UPSERT_LEADS, json={"records": [lead("r1", 2, Title="CTO")]})
    assert second.json()[0] == {"id": results[0]["id"], "success": True, "errors": [], "created": False}
    assert second.headers["Sforce-Limit-Info"].startswith("api-usage=")
    record = (await salesforce.get("/_sim/records")).json()["records"]["r1"]
    assert record["version"] == "2" and record["fields"]["Title"] == "CTO" and record["object_type"] == "Lead"


async def test_lead_without_company_fails_per_record(salesforce: httpx.AsyncClient) -> None:
    """A Lead lacking Company gets REQUIRED_FIELD_MISSING in its own result; the others are saved."""
    no_company = lead("r1", 1)
    del no_company["Company"]
    response = await salesforce.patch(UPSERT_LEADS, json={"records": [no_company, lead("r2", 1, Email="broken@")]})
    assert response.status_code == 200
    missing, bad_email = response.json()
    assert missing["success"] is False
    assert missing["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [Company]",
            "fields": ["Company"],
        }
    ]
    assert bad_email["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    contact = {"attributes": {"type": "Contact"}, "ContactSync_Id__c": "c1", "Email": "c1@example.com"}
    response = await salesforce.patch(UPSERT_CONTACTS, json={"records": [contact]})
    assert response.json()[0]["errors"][0]["fields"] == ["LastName"]


async def test_malformed_collections_are_refused_whole(salesforce: httpx.AsyncClient) -> None:
    """Unknown fields, a wrong attributes.type and over 200 records are 400 errors for the whole call."""
    unknown = await salesforce.patch(UPSERT_LEADS, json={"records": [lead("r1", 1, Shoe_Size__c="9")]})
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    company_on_contact = {"attributes": {"type": "Contact"}, "ContactSync_Id__c": "c1", "LastName": "L", "Company": "X"}
    response = await salesforce.patch(UPSERT_CONTACTS, json={"records": [company_on_contact]})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "INVALID_FIELD"
    mistyped = {**lead("r1", 1), "attributes": {"type": "Contact"}}
    wrong_type = await salesforce.patch(UPSERT_LEADS, json={"records": [mistyped]})
    assert wrong_type.status_code == 400
    too_many = await salesforce.patch(UPSERT_LEADS, json={"records": [lead(f"r{n}", 1) for n in range(201)]})
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert (await salesforce.get("/_sim/records")).json()["records"] == {}


async def test_all_or_none_rolls_back_every_record(salesforce: httpx.AsyncClient) -> None:
    """With allOrNone, one failing record rolls the others back and nothing is stored."""
    no_name = lead("r2", 1, LastName=None)
    response = await salesforce.patch(UPSERT_LEADS, json={"allOrNone": True, "records": [lead("r1", 1), no_name]})
    first, second = response.json()
    assert first["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert second["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert (await salesforce.get("/_sim/records")).json()["records"] == {}


async def test_query_then_delete_by_ids(salesforce: httpx.AsyncClient) -> None:
    """The lookup query finds Ids by external id; delete archives them; deleting again is ENTITY_IS_DELETED."""
    await salesforce.patch(UPSERT_LEADS, json={"records": [lead("r1", 1), lead("r2", 1), lead("it's", 1)]})
    soql = "SELECT Id, ContactSync_Id__c FROM Lead WHERE ContactSync_Id__c IN ('r1', 'it\\'s', 'ghost')"
    found = (await salesforce.get(f"{DATA}/query", params={"q": soql})).json()
    assert found["totalSize"] == 2 and found["done"] is True
    assert {row["ContactSync_Id__c"] for row in found["records"]} == {"r1", "it's"}
    assert found["records"][0]["attributes"]["url"].startswith(f"{DATA}/sobjects/Lead/00Q")
    ids = ",".join(row["Id"] for row in found["records"]) + ",00Q000000000zzzAAA"
    deleted = (await salesforce.delete(f"{DATA}/composite/sobjects", params={"ids": ids, "allOrNone": "false"})).json()
    assert [item["success"] for item in deleted] == [True, True, False]
    assert deleted[2]["errors"][0]["statusCode"] in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID")
    again = (await salesforce.delete(f"{DATA}/composite/sobjects", params={"ids": found["records"][0]["Id"]})).json()
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    records = (await salesforce.get("/_sim/records")).json()["records"]
    assert records["r1"]["archived"] is True and records["r2"]["archived"] is False
    assert (await salesforce.get(f"{DATA}/query", params={"q": soql})).json()["totalSize"] == 0


async def test_other_soql_is_malformed(salesforce: httpx.AsyncClient) -> None:
    """Queries outside the lookup shape get 400 MALFORMED_QUERY; unknown columns get INVALID_FIELD."""
    response = await salesforce.get(f"{DATA}/query", params={"q": "SELECT Id FROM Lead LIMIT 5"})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "MALFORMED_QUERY"
    response = await salesforce.get(f"{DATA}/query", params={"q": "SELECT Id FROM Lead WHERE Shoe__c IN ('a')"})
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"


async def test_daily_allocation_answers_request_limit_exceeded(salesforce: httpx.AsyncClient) -> None:
    """Past the 24 h allocation every call gets 403 REQUEST_LIMIT_EXCEEDED, and Sforce-Limit-Info shows usage."""
    await salesforce.put("/_sim/config", json={"daily_limit": 2})
    statuses = []
    for version in range(3):
        response = await salesforce.patch(UPSERT_LEADS, json={"records": [lead("r1", version)]})
        statuses.append(response.status_code)
    assert statuses == [200, 200, 403]
    assert response.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert response.headers["Sforce-Limit-Info"] == "api-usage=2/2"
    assert "Retry-After" not in response.headers
