"""The webhook receivers (``docs/webhooks.md``), open to the platforms without an API key
(``pipeline.web.access``) because each proves its sender itself:

- ``POST /webhooks/hubspot``: webhooks v3, signed with the app's client secret;
- ``GET|POST /webhooks/mailchimp/{secret}``: list webhooks, the secret in the URL;
- ``POST /webhooks/salesforce``: Outbound Messages of the configured organisation, acknowledged in SOAP.

A notification is answered 2xx only once its changes are on ``contacts.inbound`` (acks=all), so a
worker that dies mid-request leaves the platform's own retry to deliver it. Refusals: 401 (not the
platform, stale), 413 (over ``max_body_bytes``), 400 (malformed, with the reason), 404 (the
receiver is not configured), 503 (the record id could not be read from the platform, or Kafka
did not take the changes: the platform retries). Each answer is counted in /metrics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import cast

import structlog
from aiohttp import web
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View

from pipeline.app import app, context
from pipeline.kafka.producing import Outgoing, produce_all
from pipeline.webhooks import hubspot, mailchimp, salesforce
from pipeline.webhooks.lookup import HubSpotRecordIds, LookupFailedError, MailchimpRecordIds
from pipeline.webhooks.receiving import WebhookRefusedError, now_ms, same_secret, too_large, unauthorized
from schemas.inbound import InboundChange

log = structlog.get_logger(__name__)
WEBHOOKS = context.settings.webhooks


@cache
def hubspot_ids() -> HubSpotRecordIds:
    lane = context.lanes["hubspot"]
    return HubSpotRecordIds(context.settings.providers.hubspot, WEBHOOKS.id_cache_size, lane.transport())


@cache
def mailchimp_ids() -> MailchimpRecordIds:
    return MailchimpRecordIds(context.settings.providers.mailchimp, context.lanes["mailchimp"].transport())


def served(request: Request) -> web.Request:
    """The aiohttp request under Faust's (Faust's web driver is aiohttp)."""
    return cast(web.Request, request)


async def read_body(faust_request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes the limit (whatever Content-Length says)."""
    request, limit = served(faust_request), WEBHOOKS.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


async def receive(
    view: View, provider: str, configured: bool, changes: Callable[[], Awaitable[list[InboundChange]]],
    answer: Callable[[], Response],
) -> Response:
    """Run one receiver: refusals answered and counted, changes produced before the answer."""
    if not configured:
        context.webhook_counts.received[(provider, "not_configured")] += 1
        return view.json({"error": f"the {provider} webhook receiver is not configured"}, status=404)
    try:
        found = await changes()
        await produce_all(app, [
            Outgoing(context.topics.catalog.inbound, change.record_id.encode(), change.model_dump_json().encode())
            for change in found
        ])
    except WebhookRefusedError as refusal:
        context.webhook_counts.received[(provider, refusal.result)] += 1
        log.warning("webhook refused", provider=provider, outcome=refusal.result, status=refusal.status,
                    reason=refusal.reason)
        return view.json({"error": refusal.reason}, status=refusal.status)
    except (LookupFailedError, KafkaError, TimeoutError) as exc:  # the platform sends it again
        context.webhook_counts.received[(provider, "unavailable")] += 1
        log.error("webhook not taken", provider=provider, outcome="unavailable", error_class=type(exc).__name__,
                  error=str(exc))
        return view.json({"error": "not taken now; send it again"}, status=503)
    context.webhook_counts.received[(provider, "accepted")] += 1
    log.info("webhook accepted", provider=provider, outcome="accepted", changes=len(found))
    return answer()


@app.page("/webhooks/hubspot")
class HubSpotWebhook(View):
    async def post(self, request: Request) -> Response:
        secret = WEBHOOKS.hubspot_client_secret.get_secret_value()

        async def changes() -> list[InboundChange]:
            body = await read_body(request)
            arrived = served(request)
            uri = f"{WEBHOOKS.public_url.rstrip('/')}{arrived.path_qs}" if WEBHOOKS.public_url else str(arrived.url)
            hubspot.check_signature(secret, request.method, uri, body, request.headers, now_ms(),
                                    WEBHOOKS.hubspot_max_age_s)
            events = hubspot.parse_events(body)
            ids = await hubspot_ids().record_ids(e.objectId for e in events if e.subscriptionType != "contact.deletion")
            ids |= await hubspot_ids().record_ids(
                (e.objectId for e in events if e.subscriptionType == "contact.deletion"), archived=True)
            return hubspot.inbound_changes(events, ids, now_ms())

        enabled = bool(secret) and "hubspot" in context.lanes
        return await receive(self, "hubspot", enabled, changes, lambda: self.json({}))


@app.page("/webhooks/mailchimp/{secret}")
class MailchimpWebhook(View):
    async def get(self, request: Request, secret: str) -> Response:
        """Mailchimp's check of the URL when the webhook is registered."""
        if not same_secret(secret, WEBHOOKS.mailchimp_secret):
            return self.json({"error": "unknown webhook URL"}, status=401)
        return self.json({})

    async def post(self, request: Request, secret: str) -> Response:
        async def changes() -> list[InboundChange]:
            if not same_secret(secret, WEBHOOKS.mailchimp_secret):
                raise unauthorized("unknown webhook URL")
            event = mailchimp.parse_event(await read_body(request))
            if event.list_id and event.list_id != context.settings.providers.mailchimp.list_id:
                raise WebhookRefusedError(400, "the event is about another audience", "malformed")
            record_id = mailchimp.record_id_of(event)
            if record_id is None and event.kind in ("cleaned", "upemail"):
                record_id = await mailchimp_ids().record_id(event.email)
            return [mailchimp.inbound_change(event, record_id, now_ms())]

        configured = bool(WEBHOOKS.mailchimp_secret.get_secret_value()) and "mailchimp" in context.lanes
        return await receive(self, "mailchimp", configured, changes, lambda: self.json({}))


@app.page("/webhooks/salesforce")
class SalesforceWebhook(View):
    async def post(self, request: Request) -> Response:
        async def changes() -> list[InboundChange]:
            body = await read_body(request)
            return salesforce.inbound_changes(body, WEBHOOKS.salesforce_organization_id,
                                              context.settings.providers.salesforce.external_id_field, now_ms())

        return await receive(
            self, "salesforce", bool(WEBHOOKS.salesforce_organization_id), changes,
            lambda: self.bytes(salesforce.ACK, content_type="text/xml"),
        )
