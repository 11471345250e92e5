"""Webhooks at volume: the echoes of many of our own writes are all dropped, a burst of signed HubSpot
requests loses none while forged and stale ones produce nothing, and then nothing circulates."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Collection
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.dev.simulators.config import PROVIDERS, HubSpotSimConfig, MailchimpSimConfig, SimulatorsConfig
from pipeline.dev.webhook_burst import hubspot_request, send_burst
from schemas.inbound import InboundChange
from tests.e2e.conftest import Pipeline
from tests.e2e.crafted import plain_upsert
from tests.e2e.test_webhooks import HUBSPOT_SECRET, eventually, notified, start_with_webhooks, worker_counts

# Neither the simulators nor the worker's lanes limit the rate: each HubSpot notification costs the
# receiver one id lookup through the HubSpot lane, which would otherwise pace the test, not the receivers.
UNLIMITED_SIMS = SimulatorsConfig(
    hubspot=HubSpotSimConfig(requests_per_10s=1_000_000, daily_limit=10_000_000),
    mailchimp=MailchimpSimConfig(max_connections=1000),
)
UNLIMITED_LANES = {
    f"CONTACTSYNC_PROVIDERS__{provider.upper()}__{name}": "1000" for provider in PROVIDERS for name in ("RATE_PER_SECOND", "BURST")
}
ECHO_CHANGES = 1_000
ECHO_RECORDS = 500
ECHO_TYPES = ("customer", "lead")  # customers go to HubSpot, leads to Salesforce, both to Mailchimp
# Long enough to see any loop go round twice: each step of a loop moves a topic's end offset or a
# simulator's webhook counts, and the longest pause between two steps is 12.5 s (a stuck partition read
# again: held 10 s, checked every 2.5 s); a simulator's last notification retry waits 10 s, the tests'
# longest retry tier 4 s.
QUIET_S = 30
BURST = 1_000  # the 10,000: python -m benchmarks.webhooks (see the test's docstring)
BAD_EACH = 100  # forged and stale requests, mixed into the burst
CONCURRENCY = 32


@pytest.mark.timeout(600)  # about 2 min of it on a loaded 2-core machine, 30 s of that the quiet
async def test_echoes_are_all_dropped_a_burst_loses_nothing_and_then_nothing_circulates(pipeline) -> None:
    """On one worker: 1,000 changes from our side (500 customers and leads created, then updated)
    reach the three simulators, which notify every write back; each notification is counted as an
    echo at its platform (echoes = notifications answered 2xx, none given up) and none reaches
    contacts.changes.inbound or the platforms again (contacts.validated holds our 1,000 changes only).
    Then a burst of 1,000 signed HubSpot requests, 32 at a time, with 100 forged and 100 stale ones
    mixed in: every signed one is answered 200 and its change is on contacts.inbound when read right
    after the last answer (acknowledged only once Kafka acked it); the forged and stale ones are
    answered 401 and none of them is there. After 30 s of quiet no topic's end offset has moved
    and no simulator has written or notified again.

    The burst is 1,000, not the issue's 10,000: a request costs about 5 ms of this process's CPU
    (signing, httpx) and 4 ms of the worker's, and 11,000 took 150 s of test time on the shared
    2-core machine (the suite must stay under 20 minutes). 1,000 keep 32 requests waiting on Kafka's
    ack at once for several seconds, which is what "loses none" is about. ``python -m
    benchmarks.webhooks`` sends the full 10,000 and counts any answered 200 but not on Kafka (``lost``).
    The 1,000 changes are the issue's size: their part takes about 30 s."""
    harness, exits = pipeline
    base = await start_with_webhooks(harness, exits, UNLIMITED_SIMS, UNLIMITED_LANES)
    objects = await _echoes_of_our_changes_are_dropped(harness, base)
    sent = await notified(harness)
    await _a_burst_loses_none(harness, base, objects, echoes=sent["hubspot"]["delivered"])

    topics = [spec.name for spec in harness.catalog.specs()]
    before = await end_offsets(harness.bootstrap, topics)
    await asyncio.sleep(QUIET_S)
    assert await end_offsets(harness.bootstrap, topics) == before, f"messages still circulate after {QUIET_S} s of quiet"
    assert await notified(harness) == sent, "a simulator was written to or notified again"


async def _echoes_of_our_changes_are_dropped(harness: Pipeline, base: str) -> list[int]:
    """Publish our changes, wait for their echoes; the HubSpot objects of the customers."""
    events = [
        plain_upsert(f"echo-{n % ECHO_RECORDS}", seq=1 + n // ECHO_RECORDS, first_name=f"Ann{n // ECHO_RECORDS}",
                     contact_type=ECHO_TYPES[n % 2], subscribed=True)
        for n in range(ECHO_CHANGES)
    ]
    await harness.publish(events)
    newest = {event.record_id: (ECHO_TYPES[n % 2], str(event.version)) for n, event in enumerate(events)}

    async def all_held() -> dict[str, Any] | None:
        held = await harness.held()
        done = all(
            str(held[provider].get(record_id, {}).get("version")) == version
            for record_id, (contact_type, version) in newest.items()
            for provider in ("mailchimp", "hubspot" if contact_type == "customer" else "salesforce")
        )
        return held["hubspot"] if done else None

    hubspot = await eventually(all_held, timeout_s=240)
    assert hubspot, harness.logs()

    async def all_judged() -> dict[str, dict[str, int]] | None:
        sent = await notified(harness)
        judged = sum((await worker_counts(base, "contactsync_inbound_changes")).values())
        done = all(counts["pending"] == 0 for counts in sent.values())
        return sent if done and judged == sum(counts["delivered"] for counts in sent.values()) else None

    sent = await eventually(all_judged, timeout_s=180)
    assert sent is not None, (await notified(harness), await worker_counts(base, "contactsync_inbound_changes"))
    outcomes = await worker_counts(base, "contactsync_inbound_changes")
    for provider in PROVIDERS:
        assert sent[provider]["given_up"] == 0 and sent[provider]["delivered"] > 0, sent
        assert outcomes.get((provider, "echo"), 0) == sent[provider]["delivered"], (provider, outcomes, sent)
    assert await harness.messages(harness.catalog.changes_inbound) == []
    assert len(await harness.messages(harness.catalog.validated)) == ECHO_CHANGES
    return [int(view["native_id"]) for view in hubspot.values()]


async def _a_burst_loses_none(harness: Pipeline, base: str, objects: list[int], echoes: int) -> None:
    """The burst, about the customers' HubSpot objects with the values they hold (decided as echoes)."""
    url, now_ms = f"{base}/webhooks/hubspot", int(time.time() * 1000)
    requests = [hubspot_request(url, HUBSPOT_SECRET, objects[n % len(objects)], now_ms + n, {"firstname": "Ann1"})
                for n in range(BURST)]
    forged = [hubspot_request(url, "not-the-secret", objects[0], now_ms + BURST + n, {"firstname": "Eve"})
              for n in range(BAD_EACH)]
    stale = [hubspot_request(url, HUBSPOT_SECRET, objects[0], now_ms + BURST + BAD_EACH + n, {"firstname": "Old"},
                             signed_at_ms=now_ms - 301_000) for n in range(BAD_EACH)]
    mixed = [*requests, *forged, *stale]
    random.Random(14).shuffle(mixed)  # the bad ones spread through the burst
    statuses = dict(zip((r.occurred_at_ms for r in mixed), await send_burst(url, mixed, CONCURRENCY), strict=True))

    on_topic = {(c.platform_id, c.occurred_at_ms) for c in inbound_changes(await harness.messages(harness.catalog.inbound))}
    answered = [statuses[r.occurred_at_ms] for r in requests]
    assert answered.count(200) == BURST, sorted(set(answered))
    assert [r.marker for r in requests if r.marker not in on_topic] == []
    assert {statuses[r.occurred_at_ms] for r in (*forged, *stale)} == {401}
    assert [r.marker for r in (*forged, *stale) if r.marker in on_topic] == []
    received = {key: n for key, n in (await worker_counts(base, "contactsync_webhooks")).items() if key[0] == "hubspot"}
    assert received == {("hubspot", "accepted"): echoes + BURST, ("hubspot", "unauthorized"): BAD_EACH,
                        ("hubspot", "stale"): BAD_EACH}
    assert await eventually(lambda: _echoes_judged(base, echoes + BURST)), await worker_counts(base, "contactsync_inbound_changes")


async def _echoes_judged(base: str, count: int) -> bool:
    return (await worker_counts(base, "contactsync_inbound_changes")).get(("hubspot", "echo")) == count


def inbound_changes(messages: list[Any]) -> list[InboundChange]:
    return [InboundChange.model_validate_json(m.value) for m in messages]


async def end_offsets(bootstrap: str, topics: Collection[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # metadata for partitions_for_topic
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()
