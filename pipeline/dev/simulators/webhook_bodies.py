"""What each simulated platform sends its webhook subscriber about one write, in the platform's form:
HubSpot's JSON event batch (signed v3), a Mailchimp list webhook form, a Salesforce Outbound Message."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from pipeline.dev.simulators.notifier import Notification
from pipeline.dev.simulators.store import Operation, StoredRecord
from pipeline.webhooks.hubspot import signature

_event_ids = itertools.count(1)
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"


def hubspot_events(record: StoredRecord, operation: Operation, changed: dict[str, Any]) -> list[Notification]:
    """One batch: creation or deletion, and a propertyChange per property the write changed."""
    occurred = int(record.updated_at * 1000)
    base = {"portalId": 62515, "appId": 1160452, "occurredAt": occurred, "attemptNumber": 0,
            "objectId": int(record.native_id), "changeSource": "CRM", "subscriptionId": 1}
    events: list[dict[str, Any]] = []
    if operation in ("create", "archive"):
        kind = "contact.creation" if operation == "create" else "contact.deletion"
        events.append({**base, "eventId": next(_event_ids), "subscriptionType": kind})
    events += [
        {**base, "eventId": next(_event_ids), "subscriptionType": "contact.propertyChange",
         "propertyName": name, "propertyValue": "" if value is None else str(value)}
        for name, value in changed.items()
    ]
    return [Notification(json.dumps(events).encode(), "application/json")]


def hubspot_signature(secret: str, url: str, body: bytes) -> dict[str, str]:
    """The headers of a request HubSpot signs now."""
    timestamp = str(int(time.time() * 1000))
    return {"X-HubSpot-Signature-v3": signature(secret, "POST", url, body, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp}


def mailchimp_event(
    record: StoredRecord, operation: Operation, changed: dict[str, Any], list_id: str
) -> list[Notification]:
    """subscribe, unsubscribe or cleaned when the status changed, else profile; nothing on archive."""
    if operation == "archive":
        return []
    status = record.fields.get("status")
    if "status" in changed and status in ("subscribed", "unsubscribed", "cleaned"):
        kind = {"subscribed": "subscribe", "unsubscribed": "unsubscribe", "cleaned": "cleaned"}[status]
    else:
        kind = "profile"
    email = str(record.fields.get("email_address", ""))
    form = {"type": kind, "fired_at": datetime.fromtimestamp(record.updated_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "data[id]": record.native_id[:10], "data[email]": email, "data[email_type]": "html",
            "data[list_id]": list_id, "data[merges][EMAIL]": email}
    if kind == "unsubscribe":
        form |= {"data[action]": "unsub", "data[reason]": "manual"}
    if kind != "cleaned":  # Mailchimp's cleaned event carries the address and reason only
        form |= {f"data[merges][{tag}]": "" if value is None else str(value) for tag, value in record.fields.items()
                 if tag not in ("email_address", "status")}
    else:
        form["data[reason]"] = "hard"
    return [Notification(urlencode(form).encode(), "application/x-www-form-urlencoded")]


def salesforce_outbound_message(
    record: StoredRecord, operation: Operation, organization_id: str
) -> list[Notification]:
    """One Notification with every field of the record, as a workflow rule on create and edit sends."""
    if operation == "archive":
        return []
    modified = datetime.fromtimestamp(record.updated_at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = {"Id": record.native_id, **record.fields, "LastModifiedDate": modified}
    elements = "".join(
        f'<sf:{name} xsi:nil="true"/>' if value is None else f"<sf:{name}>{escape(str(value))}</sf:{name}>"
        for name, value in fields.items()
    )
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<notifications xmlns="{OUTBOUND}"><OrganizationId>{organization_id}</OrganizationId>'
        f"<ActionId>04k5g000000SimAAA</ActionId><Notification><Id>04l{next(_event_ids):015d}</Id>"
        f'<sObject xsi:type="sf:{record.object_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{elements}</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"
    )
    return [Notification(body.encode(), "text/xml; charset=utf-8")]
