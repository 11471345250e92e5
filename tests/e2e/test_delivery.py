"""Delivery guarantees under faults: retry timing, provider isolation, shared rate limits."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from pipeline.cdc_generator import expected_state, generate_events
from pipeline.dlq.letters import read_letters
from pipeline.providers.mailchimp import subscriber_hash
from pipeline.reconcile import reconcile
from pipeline.settings import RoutingSettings
from pipeline.simulators.config import (
    FaultConfig,
    HubSpotSimConfig,
    SimulatorsConfig,
)
from pipeline.topics import parse_duration
from tests.e2e.conftest import TEST_TIERS, Pipeline
from tests.e2e.crafted import plain_delete, plain_upsert

PROVIDERS = ("hubspot", "salesforce", "mailchimp")


async def sim_requests(harness: Pipeline, provider: str) -> list[dict[str, Any]]:
    assert harness.sims is not None
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"{harness.sims.base_urls()[provider]}/_sim/requests")
    return list(answer.json()["requests"])


async def test_retries_are_never_early(pipeline) -> None:
    """After a 5xx, a record's next try reaches the provider no sooner than its tier's delay,
    the delays grow tier by tier, and every record still ends at its newest version."""
    harness, exits = pipeline
    flaky = HubSpotSimConfig(faults=FaultConfig(seed=5, server_error=0.35))
    await harness.start(exits, SimulatorsConfig(hubspot=flaky), env={"CONTACTSYNC_PROVIDERS__HUBSPOT__BATCH_SIZE": "5"})
    events = list(generate_events(500, records=120, seed=21))
    await harness.publish(events)

    verdict = await harness.settle(events, timeout_s=180)
    assert (verdict.lost, verdict.stale) == ([], []), (verdict.lost[:3], verdict.stale[:3], harness.logs())

    tries: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for request in await sim_requests(harness, "hubspot"):
        for record in request["records"]:
            tries[(record["record_id"], record["version"])].append(request)
    retried = 0
    for attempts in tries.values():
        failures_in_a_row = 0
        for before, after in zip(attempts, attempts[1:]):
            if before["status"] is not None and before["status"] >= 500:
                failures_in_a_row += 1
                due = before["answered_at"] + parse_duration(TEST_TIERS[failures_in_a_row - 1])
                assert after["received_at"] >= due - 0.01, (before, after)
                retried += 1
            else:
                failures_in_a_row = 0
    statuses = sorted({r["status"] for a in tries.values() for r in a}, key=str)
    assert retried >= 10, ("the faults caused retries", statuses, len(tries))


async def test_throttled_hubspot_does_not_slow_salesforce_or_mailchimp(pipeline) -> None:
    """While HubSpot answers 429 (TEN_SECONDLY_ROLLING) and its lane waits, Salesforce and
    Mailchimp deliver everything they should; HubSpot catches up later without losing anything."""
    harness, exits = pipeline
    stingy = HubSpotSimConfig(requests_per_10s=4)
    env = {"CONTACTSYNC_PROVIDERS__HUBSPOT__RATE_PER_SECOND": "50",
           "CONTACTSYNC_PROVIDERS__HUBSPOT__BURST": "50",
           "CONTACTSYNC_PROVIDERS__HUBSPOT__BATCH_SIZE": "10"}
    await harness.start(exits, SimulatorsConfig(hubspot=stingy), env=env)
    events = list(generate_events(400, records=100, seed=31))
    expected = expected_state(events)
    started = time.monotonic()
    await harness.publish(events)

    done_at: dict[str, float] = {}
    while len(done_at) < 3 and time.monotonic() - started < 180:
        held = await harness.held()
        for provider in PROVIDERS:
            verdict = reconcile(expected, {provider: held.get(provider, {})}, RoutingSettings(), (provider,))
            if provider not in done_at and verdict.settled:
                done_at[provider] = time.monotonic() - started
        await asyncio.sleep(0.5)

    throttled = [r for r in await sim_requests(harness, "hubspot") if r["status"] == 429]
    assert throttled, "HubSpot throttled the pipeline"
    assert set(done_at) == set(PROVIDERS), (done_at, harness.logs())
    assert done_at["salesforce"] < done_at["hubspot"] / 2, done_at
    assert done_at["mailchimp"] < done_at["hubspot"] / 2, done_at
    assert max(done_at["salesforce"], done_at["mailchimp"]) < 30, done_at


async def test_a_member_left_by_a_move_that_timed_out_is_archived_by_later_changes(pipeline) -> None:
    """A Mailchimp move to a new address that the platform applies but whose answer is lost (every
    try, until the change is dead-lettered) leaves a member the pipeline never confirmed: the next
    change of the record archives it, and once the record is deleted none of its members is live."""
    harness, exits = pipeline
    await harness.start(exits)
    assert harness.sims is not None
    mailchimp = harness.sims.base_urls()["mailchimp"]
    worker = f"http://127.0.0.1:{harness.workers[0].web_port}"
    record, (outlook, gmail, hooli) = "moved-1", ("ann@outlook.example", "ann@gmail.example", "ann@hooli.example")
    changes = [*(plain_upsert(record, seq=seq, email=email, subscribed=True)  # subscribed: to Mailchimp
                 for seq, email in enumerate((outlook, gmail, hooli), start=1)),
               plain_delete(record, seq=4, email=hooli)]
    answers_lost = {"timeout": 1.0, "timeout_hold_s": 0.2, "timeout_mode": "drop_after_write"}

    async with httpx.AsyncClient(timeout=30) as client:
        async def delivered(change: int) -> bool:
            status = (await client.get(f"{worker}/records/{record}")).json()
            held = status.get("providers", {}).get("mailchimp", {})
            return held.get("state") == "delivered" and held.get("version") == changes[change].version

        async def dead_lettered() -> bool:
            letters = await read_letters(harness.bootstrap, harness.catalog)
            return any(letter.key == record.encode() for letter in letters)

        async def writes_to(email: str) -> list[str]:
            history = (await client.get(f"{mailchimp}/_sim/records/{record}/history")).json()["history"]
            return [write["operation"] for write in history if write["native_id"] == subscriber_hash(email)]

        async def faults(changes: dict[str, Any]) -> None:
            answer = await client.put(f"{mailchimp}/_sim/config", json={"faults": changes})
            assert answer.status_code == 200, answer.text

        await harness.publish(changes[:1])
        await _until(lambda: delivered(0), "outlook delivered", harness)
        await faults(answers_lost)
        await harness.publish(changes[1:2])
        await _until(dead_lettered, "the move to gmail dead-lettered", harness)
        await faults({"timeout": 0.0})
        gmail_before = await writes_to(gmail)
        await harness.publish(changes[2:3])
        await _until(lambda: delivered(2), "hooli delivered", harness)
        gmail_after = await writes_to(gmail)
        await harness.publish(changes[3:])
        await _until(lambda: delivered(3), "the delete delivered", harness)
        view = (await client.get(f"{mailchimp}/_sim/records/{record}")).json()["record"]

    assert gmail_before == ["create"], "the move whose answer was lost went through"
    assert gmail_after == ["create", "archive"]
    assert view["archived"] and subscriber_hash(gmail) in view["native_ids"], view


async def _until(check: Callable[[], Awaitable[bool]], what: str, harness: Pipeline, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s; {harness.logs()}"
        await asyncio.sleep(0.5)
