"""A burst of HubSpot webhook requests, signed as HubSpot signs them (v3), sent a few at a time:
the burst test (``tests/e2e/test_webhook_load.py``) and the webhook benchmark
(``benchmarks/webhooks.py``). Each request is one event about one object at its own ``occurredAt``,
so the change it becomes on ``contacts.inbound`` says which request it came from."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from pipeline.webhooks.hubspot import signature


@dataclass(frozen=True)
class HubSpotRequest:
    object_id: int
    occurred_at_ms: int
    body: bytes
    headers: dict[str, str]

    @property
    def marker(self) -> tuple[str, int]:
        """(platform id, occurred at) as the InboundChange of this request carries them."""
        return str(self.object_id), self.occurred_at_ms


def hubspot_request(
    url: str, secret: str, object_id: int, occurred_at_ms: int, properties: Mapping[str, str],
    *, signed_at_ms: int | None = None,
) -> HubSpotRequest:
    """One batch of propertyChange events about ``object_id``, signed with ``secret`` at ``signed_at_ms``
    (default now; HubSpot's receivers refuse a signature older than 5 minutes)."""
    events = [
        {"objectId": object_id, "subscriptionType": "contact.propertyChange", "occurredAt": occurred_at_ms,
         "propertyName": name, "propertyValue": value, "portalId": 62515, "attemptNumber": 0}
        for name, value in properties.items()
    ]
    body = json.dumps(events).encode()
    timestamp = str(signed_at_ms if signed_at_ms is not None else int(time.time() * 1000))
    headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
               "X-HubSpot-Signature-v3": signature(secret, "POST", url, body, timestamp)}
    return HubSpotRequest(object_id, occurred_at_ms, body, headers)


async def send_burst(url: str, requests: Sequence[HubSpotRequest], concurrency: int) -> list[int]:
    """POST every request, ``concurrency`` at a time; each one's status in order (0: no answer)."""
    statuses = [0] * len(requests)
    pending = iter(range(len(requests)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def sender(client: httpx.AsyncClient) -> None:
        for index in pending:
            request = requests[index]
            try:
                response = await client.post(url, content=request.body, headers=request.headers)
            except httpx.HTTPError:
                continue
            statuses[index] = response.status_code

    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
    return statuses
