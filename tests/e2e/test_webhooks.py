"""Both ways: the simulators notify changes by real HTTP webhooks to a worker, which decides them
against ours and carries the winners to the contacts database's topic and the other platforms."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pipeline.dev.simulators.config import SimulatorsConfig
from pipeline.dev.simulators.webhook_bodies import hubspot_signature
from schemas.inbound import InboundResolved
from tests.e2e.conftest import Pipeline
from tests.e2e.crafted import plain_upsert

MAILCHIMP_SECRET = "e2e-mailchimp-secret-0123456789"
HUBSPOT_SECRET = "sim-hubspot-client-secret"
ORG = "00D5g000004SimXAAA"
ENV = {
    "CONTACTSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET,
    "CONTACTSYNC_WEBHOOKS__MAILCHIMP_SECRET": MAILCHIMP_SECRET,
    "CONTACTSYNC_WEBHOOKS__SALESFORCE_ORGANIZATION_ID": ORG,
}


async def start_with_webhooks(
    harness: Pipeline, exits: Any, sim_config: SimulatorsConfig | None = None, env: dict[str, str] | None = None
) -> str:
    """One worker with webhook secrets (and ``env``); every simulator notifies it. Returns the worker's base URL."""
    await harness.start(exits, sim_config, env=ENV | (env or {}))
    base = f"http://127.0.0.1:{harness.workers[0].web_port}"
    assert harness.sims is not None
    harness.sims.hubspot.reconfigure({"webhook": {"url": f"{base}/webhooks/hubspot"}})
    harness.sims.mailchimp.reconfigure({"webhook": {"url": f"{base}/webhooks/mailchimp/{MAILCHIMP_SECRET}"}})
    harness.sims.salesforce.reconfigure({"webhook": {"url": f"{base}/webhooks/salesforce"}})
    return base


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.5)


async def notified(harness: Pipeline) -> dict[str, dict[str, int]]:
    """Each simulator's webhook counts (queued, delivered, attempts, given_up, pending)."""
    assert harness.sims is not None
    async with httpx.AsyncClient(timeout=30) as client:
        answers = {p: await client.get(f"{url}/_sim/webhooks") for p, url in harness.sims.base_urls().items()}
    return {p: {k: v for k, v in a.json().items() if k != "provider"} for p, a in answers.items()}


async def worker_counts(base: str, metric: str) -> dict[tuple[str, str], float]:
    """A counter of the worker's /metrics by (provider, its other label)."""
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(f"{base}/metrics")).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples if family.name == metric else ():
            if not sample.name.endswith("_total"):
                continue
            labels = dict(sample.labels)
            provider = labels.pop("provider")
            (other,) = labels.values()
            counts[(provider, other)] = sample.value
    return counts


async def echoes_judged(harness: Pipeline, base: str) -> bool:
    """Whether every notification the simulators queued was delivered and the worker at ``base``
    judged each (its echoes of our own writes, before a test edits at a platform)."""
    sent = await notified(harness)
    judged = sum((await worker_counts(base, "contactsync_inbound_changes")).values())
    return all(counts["pending"] == 0 for counts in sent.values()) and judged == sum(
        counts["delivered"] for counts in sent.values()
    )


async def sim_record(harness: Pipeline, provider: str, record_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{harness.sims.base_urls()[provider]}/_sim/records/{record_id}")  # type: ignore[union-attr]
        return answer.json().get("record") if answer.status_code == 200 else None


async def sim_edit(harness: Pipeline, provider: str, record_id: str, fields: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        url = f"{harness.sims.base_urls()[provider]}/_sim/records/{record_id}/edit"  # type: ignore[union-attr]
        (await client.post(url, json={"fields": fields})).raise_for_status()


async def resolved(harness: Pipeline) -> list[InboundResolved]:
    return [InboundResolved.model_validate_json(m.value) for m in await harness.messages(harness.catalog.changes_inbound)]


async def test_platform_edits_come_back_and_our_echoes_do_not(pipeline) -> None:
    """An email edited at HubSpot reaches contacts.changes.inbound (with both times) and Mailchimp;
    a Mailchimp unsubscribe reaches contacts.changes.inbound and survives a later internal update of
    the name; every echo of our own writes is dropped, and nothing circulates once quiet."""
    harness, exits = pipeline
    base = await start_with_webhooks(harness, exits)
    records = [f"wh-{n}" for n in range(20)]
    await harness.publish([plain_upsert(r, first_name="Ann", subscribed=True) for r in records])

    async def everywhere() -> bool:
        held = await harness.held()
        return all(r in held["hubspot"] and r in held["mailchimp"] for r in records)

    assert await eventually(everywhere), harness.logs()
    assert await eventually(lambda: echoes_judged(harness, base)), harness.logs()  # the first writes' echoes
    assert await resolved(harness) == [], "our own writes came back as platform changes"

    started = time.monotonic()
    await sim_edit(harness, "hubspot", "wh-1", {"email": "new-wh-1@example.com"})

    async def email_at_mailchimp() -> bool:
        member = await sim_record(harness, "mailchimp", "wh-1")
        return member is not None and member["fields"]["email_address"] == "new-wh-1@example.com" and not member["archived"]

    assert await eventually(email_at_mailchimp), harness.logs()
    latency_s = time.monotonic() - started
    (change,) = [c for c in await resolved(harness) if c.record_id == "wh-1"]
    assert (change.provider, change.fields) == ("hubspot", {"email": "new-wh-1@example.com"})
    assert change.decisions[0].winner == "platform" and change.decisions[0].ours_at_ms is not None
    print(f"edit at HubSpot to Mailchimp: {latency_s:.2f} s")

    await sim_edit(harness, "mailchimp", "wh-2", {"status": "unsubscribed"})
    assert await eventually(lambda: _has(harness, "wh-2", {"subscribed": False})), harness.logs()
    later = int(time.time() * 1000)  # a later source change, its row still saying subscribed
    await harness.publish([plain_upsert("wh-2", ts=later, first_name="Annabel", subscribed=True)])

    async def renamed_at_mailchimp() -> dict[str, Any] | None:
        member = await sim_record(harness, "mailchimp", "wh-2")
        return member if member and member["fields"].get("FNAME") == "Annabel" else None

    member = await eventually(renamed_at_mailchimp)
    assert member is not None and member["fields"]["status"] == "unsubscribed", member

    await asyncio.sleep(5)
    before = await _quiet_counts(harness)
    await asyncio.sleep(10)
    assert await _quiet_counts(harness) == before, "messages still circulate after quiet"
    changes = await resolved(harness)
    assert sorted(c.record_id for c in changes) == ["wh-1", "wh-2"], changes
    metrics = httpx.get(f"http://127.0.0.1:{harness.workers[0].web_port}/metrics").text
    assert 'contactsync_inbound_changes_total{outcome="echo",provider="mailchimp"}' in metrics


async def _has(harness: Pipeline, record_id: str, fields: dict[str, Any]) -> bool:
    return any(c.record_id == record_id and c.fields == fields for c in await resolved(harness))


async def _quiet_counts(harness: Pipeline) -> tuple[int, int, int]:
    inbound = len(await harness.messages(harness.catalog.inbound))
    validated = len(await harness.messages(harness.catalog.validated))
    return inbound, validated, len(await resolved(harness))


async def test_forged_stale_and_wrong_secret_webhooks_produce_nothing(pipeline) -> None:
    """Bad signatures, stale timestamps, a wrong Mailchimp secret, another Salesforce org: 401 and
    not one event on contacts.inbound; an oversized body 413; a malformed one 400 with its reason."""
    harness, exits = pipeline
    base = await start_with_webhooks(harness, exits)
    body = json.dumps([{"objectId": 1, "subscriptionType": "contact.propertyChange", "occurredAt": 1,
                        "propertyName": "email", "propertyValue": "x@example.com"}]).encode()
    url = f"{base}/webhooks/hubspot"
    forged = hubspot_signature("not-the-secret", url, body)
    stale = hubspot_signature(HUBSPOT_SECRET, url, body) | {"X-HubSpot-Request-Timestamp": str(int(time.time() * 1000) - 301_000)}
    async with httpx.AsyncClient() as client:
        statuses = [
            (await client.post(url, content=body, headers=forged)).status_code,
            (await client.post(url, content=body, headers=stale)).status_code,
            (await client.post(url, content=body)).status_code,
            (await client.post(f"{base}/webhooks/mailchimp/wrong-secret-0123456789", content=b"type=profile")).status_code,
            (await client.get(f"{base}/webhooks/mailchimp/wrong-secret-0123456789")).status_code,
            (await client.post(f"{base}/webhooks/salesforce", content=_envelope("00D000000000000AAA"))).status_code,
        ]
        too_big = await client.post(f"{base}/webhooks/mailchimp/{MAILCHIMP_SECRET}", content=b"x" * 1_000_001)
        malformed = await client.post(f"{base}/webhooks/mailchimp/{MAILCHIMP_SECRET}", content=b"type=bounce")
        validation = await client.get(f"{base}/webhooks/mailchimp/{MAILCHIMP_SECRET}")
    assert statuses == [401] * 6
    assert too_big.status_code == 413
    assert malformed.status_code == 400 and "type must be" in malformed.json()["error"]
    assert validation.status_code == 200
    assert await harness.messages(harness.catalog.inbound) == []
    metrics = httpx.get(f"{base}/metrics").text
    assert 'contactsync_webhooks_total{provider="hubspot",result="stale"} 1.0' in metrics


def _envelope(org: str) -> bytes:
    return (
        '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org}'
        "</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()
