"""The receivers' logic: each platform's proof of sender, and its notifications read into changes."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError
from pipeline.settings import WebhooksSettings
from pipeline.webhooks import hubspot, mailchimp, salesforce
from pipeline.webhooks.receiving import WebhookRefusedError, check_webhook_secrets

SECRET = "hubspot-client-secret"
URI = "https://sync.example.com/webhooks/hubspot"
NOW = 1_760_000_000_000


def signed(body: bytes, timestamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-HubSpot-Request-Timestamp": str(timestamp),
        "X-HubSpot-Signature-v3": hubspot.signature(secret, "POST", URI, body, str(timestamp)),
    }


def refusal(call: object, *args: object) -> WebhookRefusedError:
    with pytest.raises(WebhookRefusedError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_hubspot_signature_is_checked_and_stale_requests_refused() -> None:
    """A request signed with the secret passes; another secret, a changed body or a timestamp over
    5 minutes old is 401, the stale one counted apart."""
    body = b'[{"objectId": 1}]'
    hubspot.check_signature(SECRET, "POST", URI, body, signed(body), NOW, 300)
    assert refusal(hubspot.check_signature, SECRET, "POST", URI, body, signed(body, secret="other"), NOW, 300).status == 401
    assert refusal(hubspot.check_signature, SECRET, "POST", URI, b"[]", signed(body), NOW, 300).result == "unauthorized"
    stale = refusal(hubspot.check_signature, SECRET, "POST", URI, body, signed(body, NOW - 301_000), NOW, 300)
    assert (stale.status, stale.result) == (401, "stale")
    assert refusal(hubspot.check_signature, SECRET, "POST", URI, body, {}, NOW, 300).status == 401


def test_hubspot_events_of_one_save_become_one_change_with_the_version_it_holds() -> None:
    """Property changes of one object at one moment are one change in our field names; the version
    property is the platform's version; a group of our own properties alone is an echo; opt-out is
    an unsubscribe; an object without contactsync_id gets a minted id, marked new."""
    events = [
        {"objectId": 7, "subscriptionType": "contact.propertyChange", "occurredAt": 5, "propertyName": "email",
         "propertyValue": "a@x.com"},
        {"objectId": 7, "subscriptionType": "contact.propertyChange", "occurredAt": 5,
         "propertyName": "contactsync_version", "propertyValue": "42"},
        {"objectId": 8, "subscriptionType": "contact.propertyChange", "occurredAt": 6,
         "propertyName": "contactsync_version", "propertyValue": "43"},
        {"objectId": 9, "subscriptionType": "contact.propertyChange", "occurredAt": 7,
         "propertyName": "hs_email_optout", "propertyValue": "true"},
        {"objectId": 9, "subscriptionType": "company.creation", "occurredAt": 7},
    ]
    parsed = hubspot.parse_events(json.dumps(events).encode())
    changes = hubspot.inbound_changes(parsed, {7: "c-7", 8: "c-8", 9: None}, 100)
    by_id = {change.platform_id: change for change in changes}
    assert len(changes) == 3
    assert (by_id["7"].record_id, by_id["7"].fields, by_id["7"].platform_version) == ("c-7", {"email": "a@x.com"}, 42)
    assert by_id["8"].echo_only and not by_id["7"].echo_only
    assert (by_id["9"].record_id, by_id["9"].new_record, by_id["9"].fields) == ("hubspot-9", True, {"subscribed": False})


def test_hubspot_creation_and_the_properties_it_set_are_one_change() -> None:
    """A creation's events (the creation and its properties, at one moment) are one contact.creation
    change carrying the properties, so the echo of our own create is recognised by its values."""
    events = [
        {"objectId": 7, "subscriptionType": "contact.creation", "occurredAt": 5},
        {"objectId": 7, "subscriptionType": "contact.propertyChange", "occurredAt": 5, "propertyName": "firstname",
         "propertyValue": "Ann"},
        {"objectId": 7, "subscriptionType": "contact.propertyChange", "occurredAt": 5,
         "propertyName": "contactsync_version", "propertyValue": "42"},
    ]
    (change,) = hubspot.inbound_changes(hubspot.parse_events(json.dumps(events).encode()), {7: "c-7"}, 100)
    assert (change.kind, change.fields, change.platform_version) == ("contact.creation", {"first_name": "Ann"}, 42)
    assert not change.echo_only


def test_hubspot_malformed_batch_is_400_with_the_reason() -> None:
    """A body that is not an event batch names what is wrong."""
    refused = refusal(hubspot.parse_events, b'[{"objectId": "x"}]')
    assert refused.status == 400 and "objectId" in refused.reason


def mailchimp_form(kind: str, **data: str) -> bytes:
    return urlencode({"type": kind, "fired_at": "2026-01-02 03:04:05", **{f"data[{k}]": v for k, v in data.items()}}).encode()


def test_mailchimp_unsubscribe_and_profile_read_with_our_id_and_version() -> None:
    """An unsubscribe is subscribed=False at its fired_at time, keyed by the CSID merge field; a
    profile carries the merge fields in our names; a member without CSID gets a minted id."""
    body = mailchimp_form("unsubscribe", id="abc", email="A@x.com", list_id="contacts",
                          **{"merges][CSID": "c-1", "merges][CSVERSION": "9", "merges][FNAME": "Ann"})
    event = mailchimp.parse_event(body)
    change = mailchimp.inbound_change(event, mailchimp.record_id_of(event), 1)
    assert (change.record_id, change.platform_version, change.occurred_at_ms) == ("c-1", 9, 1767323045000)
    assert change.fields == {"first_name": "Ann", "email": "A@x.com", "subscribed": False}
    fresh = mailchimp.parse_event(mailchimp_form("profile", id="m9", email="b@x.com", **{"merges][LNAME": ""}))
    new = mailchimp.inbound_change(fresh, mailchimp.record_id_of(fresh), 1)
    assert (new.record_id, new.new_record, new.fields) == ("mailchimp-m9", True, {"last_name": None, "email": "b@x.com"})


@pytest.mark.parametrize(("body", "reason"), [
    (b"type=bounce&fired_at=2026-01-02+03:04:05", "type must be"),
    (b"type=profile&fired_at=yesterday&data[email]=a@x.com", "fired_at"),
    (b"type=cleaned&fired_at=2026-01-02+03:04:05", "data[email]"),
])
def test_mailchimp_malformed_events_are_400_with_the_reason(body: bytes, reason: str) -> None:
    """Each malformed event says what is wrong."""
    refused = refusal(mailchimp.parse_event, body)
    assert refused.status == 400 and reason in refused.reason


ORG = "00D000000000001AAA"


def envelope(org: str = ORG, sobject: str = "Contact", fields: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k000000000001</ActionId>
   <Notification>
    <Id>04l000000000001</Id>
    <sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>003000000000001AAA</sf:Id>{fields}
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


def test_salesforce_outbound_message_read_and_org_checked() -> None:
    """A Contact notification becomes a change at its LastModifiedDate, our placeholders and nils
    read as no value; another organisation is 401; a bomb or a wrong shape is 400."""
    fields = ("<sf:ContactSync_Id__c>c-5</sf:ContactSync_Id__c><sf:ContactSync_Version__c>77</sf:ContactSync_Version__c>"
              "<sf:Phone>+14155550100</sf:Phone><sf:LastName>[not provided]</sf:LastName>"
              '<sf:Title xsi:nil="true"/><sf:LastModifiedDate>2026-01-02T03:04:05.000Z</sf:LastModifiedDate>')
    (change,) = salesforce.inbound_changes(envelope(fields=fields), ORG[:15], "ContactSync_Id__c", 1)
    assert (change.record_id, change.platform_version, change.occurred_at_ms) == ("c-5", 77, 1767323045000)
    assert change.fields == {"phone": "+14155550100", "last_name": None, "title": None}
    assert refusal(salesforce.inbound_changes, envelope(org="00D000000000002AAA"), ORG, "ContactSync_Id__c", 1).status == 401
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><x>&b;</x>'
    assert refusal(salesforce.inbound_changes, bomb, ORG, "ContactSync_Id__c", 1).status == 400
    assert refusal(salesforce.inbound_changes, envelope(sobject="Account"), ORG, "ContactSync_Id__c", 1).status == 400


def test_webhook_secrets_are_checked_like_credentials() -> None:
    """A Mailchimp secret that cannot travel in a URL, or is short, is one ConfigError naming the setting."""
    check_webhook_secrets(WebhooksSettings(mailchimp_secret=SecretStr("a" * 24)))
    with pytest.raises(ConfigError, match="CONTACTSYNC_WEBHOOKS__MAILCHIMP_SECRET"):
        check_webhook_secrets(WebhooksSettings(mailchimp_secret=SecretStr("short/secret")))
    with pytest.raises(ConfigError, match="HUBSPOT_CLIENT_SECRET"):
        check_webhook_secrets(WebhooksSettings(hubspot_client_secret=SecretStr("has space")))
