"""Salesforce Outbound Messages: a SOAP ``notifications`` envelope of up to 100 records, and the
acknowledgement Salesforce waits for (without it, it sends the message again for up to 24 hours).

The organisation id in the envelope must be ours. Each ``Notification`` carries the fields selected
for the message (select the mapped fields, the external id, ContactSync_Version__c and
LastModifiedDate); the whole record, not only what changed. Parsed with defusedxml: no entity
expansion, no external references.
"""

from __future__ import annotations

from datetime import datetime
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from pipeline.webhooks.fields import as_version, salesforce_fields
from pipeline.webhooks.receiving import malformed, minted_id, unauthorized
from schemas.inbound import InboundChange

PROVIDER = "salesforce"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
).encode()


def inbound_changes(
    body: bytes, organization_id: str, external_id_field: str, received_at_ms: int
) -> list[InboundChange]:
    """Every notification of the envelope; 401 for another org, 400 for anything malformed."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise malformed(f"not XML Salesforce would send: {exc}") from None
    notifications = root.find(f"{{{SOAP}}}Body/{{{OUTBOUND}}}notifications")
    if notifications is None:
        raise malformed("no soapenv:Body/notifications element")
    org = (notifications.findtext(f"{{{OUTBOUND}}}OrganizationId") or "").strip()
    if not organization_id or org[:15] != organization_id[:15]:
        raise unauthorized("the OrganizationId is not the configured organisation")
    return [
        _change(item, external_id_field, received_at_ms)
        for item in notifications.findall(f"{{{OUTBOUND}}}Notification")
    ]


def _change(notification: Element, external_id_field: str, received_at_ms: int) -> InboundChange:
    record = notification.find(f"{{{OUTBOUND}}}sObject")
    if record is None:
        raise malformed("a Notification without an sObject")
    sobject = record.get(f"{{{XSI}}}type", "").rpartition(":")[2]
    mapping = salesforce_fields(sobject, external_id_field)
    if mapping is None:
        raise malformed(f"sObject type {sobject!r} is not one contacts are written as")
    values = {
        _local(child.tag): None if child.get(f"{{{XSI}}}nil") == "true" else (child.text or "") for child in record
    }
    platform_id = values.get("Id") or ""
    if not platform_id:
        raise malformed("an sObject without an Id")
    record_id = values.get(mapping.record_id) or None
    return InboundChange(
        record_id=record_id or minted_id(PROVIDER, platform_id),
        provider=PROVIDER,
        platform_id=platform_id,
        new_record=record_id is None,
        kind=f"OutboundMessage:{sobject}",
        occurred_at_ms=_modified_ms(values.get("LastModifiedDate"), received_at_ms),
        received_at_ms=received_at_ms,
        fields=mapping.read(values),
        platform_version=as_version(values.get(mapping.version)),
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _modified_ms(value: str | None, default: int) -> int:
    if not value:
        return default
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise malformed(f"LastModifiedDate {value!r} is not an ISO time") from None
