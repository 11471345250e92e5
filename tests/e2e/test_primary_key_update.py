"""A primary-key update whose new key arrives before the old key's delete (docs/postgres-source.md).

Debezium sends ``UPDATE contacts SET id = 30 WHERE id = 3`` as a create of key 30 (header
``__debezium.oldkey``) and a delete of key 3 (header ``__debezium.newkey``) on different partitions,
in no order. The test delivers the create first and the delete only once the create has reached
both platforms where the email is a key, which is the order that went wrong: HubSpot refused the
create ("Contact already exists") for good, and Mailchimp's late delete archived the member the new
key had just taken over.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from pipeline.kafka.clients import acked_producer
from pipeline.kafka.producing import Outgoing
from schemas.dispatch import Outcome
from tests.e2e.conftest import Pipeline, new_pipeline

EMAIL = "ann.lee@example.com"
ROW = {"email": EMAIL, "first_name": "Ann", "last_name": "Lee", "phone": None, "company": "Acme", "title": None,
       "contact_type": "customer", "subscribed": True, "do_not_sync": False}
TS_MS = int(time.time() * 1000)
# Long enough tiers that the old key's delete comes within them on a loaded machine (about 76 s in all).
TIERS = ["1s", "15s", "60s"]


@pytest.fixture
async def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[tuple[Pipeline, AsyncExitStack]]:
    harness = await new_pipeline(kafka_bootstrap, topic_prefix, tmp_path, tiers=TIERS)
    async with AsyncExitStack() as exits:
        try:
            yield harness, exits
        finally:
            await harness.stop()


def debezium(op: str, *, before: dict[str, Any] | None, after: dict[str, Any] | None, lsn: int) -> bytes:
    """A change event as Debezium's JSON converter writes it (schemas.enable=false)."""
    source = {"connector": "postgresql", "ts_ms": TS_MS, "table": "contacts", "lsn": lsn, "snapshot": "false"}
    return json.dumps({"before": before, "after": after, "source": source, "op": op, "ts_ms": TS_MS}).encode()


def key(record_id: int) -> bytes:
    return json.dumps({"id": record_id}).encode()


async def send(harness: Pipeline, *messages: Outgoing) -> None:
    async with acked_producer(harness.bootstrap, "pk-update-test", 30) as producer:
        await producer.send_all(messages)


async def outcomes(harness: Pipeline) -> list[Outcome]:
    return [Outcome.model_validate_json(m.value) for m in await harness.messages(harness.catalog.outcomes)]


async def wait_for(what: str, harness: Pipeline, check: Any, timeout_s: float = 150) -> None:
    """Until ``await check()`` holds; a failure names ``what`` and the last state seen."""
    deadline = time.monotonic() + timeout_s
    while not (found := await check())[0]:
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s; last seen {found[1]}; {harness.logs()}"
        await asyncio.sleep(1)


async def test_a_primary_key_update_whose_new_key_comes_first_ends_with_the_new_record_live(pipeline) -> None:
    """Create of 30 (replacing 3) delivered before the delete of 3: HubSpot retries the create's
    email conflict until the delete archives 3; Mailchimp's late delete of 3 leaves the member 30
    holds. End state: 30 live at both, 3 gone, nothing dead-lettered."""
    harness, exits = pipeline
    await harness.start(exits)
    cdc = harness.catalog.cdc

    await send(harness, Outgoing(cdc, key(3), debezium("c", before=None, after={"id": 3, **ROW}, lsn=1000)))

    async def old_record_held() -> tuple[bool, Any]:
        held = await harness.held()
        views = {provider: held[provider].get("3") for provider in ("hubspot", "mailchimp")}
        return all(view is not None and not view["archived"] for view in views.values()), views

    await wait_for("record 3 live at HubSpot and Mailchimp", harness, old_record_held)

    # UPDATE contacts SET id = 30 WHERE id = 3: the create first, alone.
    create = debezium("c", before=None, after={"id": 30, **ROW}, lsn=2000)
    await send(harness, Outgoing(cdc, key(30), create, headers=[("__debezium.oldkey", key(3))]))

    async def create_answered() -> tuple[bool, Any]:
        mailchimp = (await harness.held())["mailchimp"].get("30")
        hubspot = [o.state for o in await outcomes(harness) if (o.record_id, o.provider) == ("30", "hubspot")]
        return mailchimp is not None and not mailchimp["archived"] and bool(hubspot), (mailchimp, hubspot)

    await wait_for("the create of 30 answered by HubSpot and live at Mailchimp", harness, create_answered)

    # Then the old key's delete (REPLICA IDENTITY DEFAULT: the key and NULLs) and its tombstone.
    old_key_only = {"id": 3, **dict.fromkeys(ROW), "subscribed": False, "do_not_sync": False}
    newkey = [("__debezium.newkey", key(30))]
    await send(
        harness,
        Outgoing(cdc, key(3), debezium("d", before=old_key_only, after=None, lsn=2000), headers=newkey),
        Outgoing(cdc, key(3), None, headers=newkey),
    )

    async def settled() -> tuple[bool, Any]:
        held = await harness.held()
        views = {(provider, record): held[provider].get(record)
                 for provider in ("hubspot", "mailchimp") for record in ("3", "30")}
        new_live = all(views[(p, "30")] is not None and not views[(p, "30")]["archived"] for p in ("hubspot", "mailchimp"))
        old_gone = all(views[(p, "3")] is None or views[(p, "3")]["archived"] for p in ("hubspot", "mailchimp"))
        states = {(o.record_id, o.provider, o.version): o.state for o in await outcomes(harness)}
        done = all(states.get((record, provider, 2000)) == "delivered"
                   for record in ("3", "30") for provider in ("hubspot", "mailchimp"))
        return new_live and old_gone and done, {"views": views, "outcomes": states}

    await wait_for("30 live and 3 gone at HubSpot and Mailchimp", harness, settled)
    first = next(o for o in await outcomes(harness) if (o.record_id, o.provider) == ("30", "hubspot"))
    assert first.state == "retrying" and "Contact already exists" in (first.error or ""), first  # the race happened
    held = await harness.held()
    assert held["hubspot"]["30"]["fields"]["email"] == EMAIL
    assert held["mailchimp"]["30"]["fields"]["email_address"] == EMAIL
    assert await harness.messages(harness.catalog.dlq) == []
