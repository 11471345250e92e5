"""Mapping contact changes to each provider's payload from pipeline/mappings/*.yaml, and the registry."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from pipeline.errors import ConfigError, MappingError, PermanentError
from pipeline.providers import build_mappers, build_provider, build_providers
from pipeline.providers.hubspot import HubSpotMapper
from pipeline.providers.mailchimp import MailchimpMapper
from pipeline.providers.mapping import FieldMap, MappingFile, load_mapping
from pipeline.providers.salesforce import SalesforceMapper
from pipeline.settings import ProvidersSettings
from schemas.providers import (
    HubSpotObjectId,
    HubSpotUpsertInput,
    MailchimpMember,
    MailchimpMemberRef,
    SalesforceRecord,
    SalesforceRecordRef,
)
from tests.unit.providers.wire import HUBSPOT, MAILCHIMP, SALESFORCE, change

FULL: dict[str, Any] = {"email": "ann@example.com", "phone": "+14155550100", "first_name": "Ann", "last_name": "Lee",
        "company": "Acme", "title": "CTO"}


def test_hubspot_upsert_maps_standard_and_sync_properties() -> None:
    """Contact fields become HubSpot's property names as strings, with contactsync id and version."""
    record = HubSpotMapper(HUBSPOT)(change("r1", version=42, **FULL))
    payload = HubSpotUpsertInput.model_validate(record.payload)
    assert (record.provider, record.op, record.key, record.version) == ("hubspot", "upsert", "r1", 42)
    assert payload == HubSpotUpsertInput(id="r1", idProperty="contactsync_id", properties={
        "email": "ann@example.com", "phone": "+14155550100", "firstname": "Ann", "lastname": "Lee",
        "company": "Acme", "jobtitle": "CTO", "contactsync_id": "r1", "contactsync_version": "42"})


def test_hubspot_sends_only_fields_with_values() -> None:
    """Missing and empty contact fields are left out instead of being sent as null or blank."""
    record = HubSpotMapper(HUBSPOT)(change("r1", email="a@b.co", first_name=""))
    assert record.payload["properties"] == {"email": "a@b.co", "contactsync_id": "r1",
                                            "contactsync_version": "7"}


def test_hubspot_key_follows_the_configured_id_property() -> None:
    """With idProperty email the key is the email; a contact without one cannot be mapped."""
    mapper = HubSpotMapper(HUBSPOT.model_copy(update={"id_property": "email"}))
    assert mapper(change("r1", email="a@b.co")).key == "a@b.co"
    with pytest.raises(MappingError):
        mapper(change("r1", phone="+1"))
    with pytest.raises(MappingError):
        mapper(change("r1", "delete"))


def test_hubspot_delete_needs_only_the_record_id() -> None:
    """A delete without the last known contact maps to the record id as the id property value."""
    record = HubSpotMapper(HUBSPOT)(change("r9", "delete"))
    assert (record.op, record.key) == ("delete", "r9")
    assert HubSpotObjectId.model_validate(record.payload) == HubSpotObjectId(id="r9")


def test_salesforce_lead_gets_documented_placeholders() -> None:
    """A lead without last name and company becomes a Lead with the mapping file's placeholders."""
    record = SalesforceMapper(SALESFORCE)(change("r1", version=3, email="a@b.co", contact_type="lead"))
    assert record.payload == {"attributes": {"type": "Lead"}, "LastName": "[not provided]",
                              "Company": "[not provided]", "Email": "a@b.co",
                              "ContactSync_Id__c": "r1", "ContactSync_Version__c": "3"}
    SalesforceRecord.model_validate(record.payload)


def test_salesforce_values_replace_placeholders_and_type_picks_the_sobject() -> None:
    """Real values win over placeholders; prospects are Leads, other types and none are Contacts."""
    mapper = SalesforceMapper(SALESFORCE)
    prospect = mapper(change("r1", contact_type="Prospect", **FULL)).payload
    assert prospect["attributes"] == {"type": "Lead"}
    assert (prospect["LastName"], prospect["Company"], prospect["Title"]) == ("Lee", "Acme", "CTO")
    customer = mapper(change("r2", contact_type="customer", **FULL)).payload
    assert customer["attributes"] == {"type": "Contact"} and "Company" not in customer
    assert mapper(change("r3")).payload["attributes"] == {"type": "Contact"}


def test_salesforce_external_id_field_comes_from_settings() -> None:
    """The record id is written to settings.external_id_field."""
    mapper = SalesforceMapper(SALESFORCE.model_copy(update={"external_id_field": "Ext__c"}))
    assert mapper(change("r1")).payload["Ext__c"] == "r1"


def test_salesforce_delete_looks_in_every_mapped_sobject() -> None:
    """A delete looks in Lead and Contact even when the contact is a customer now (it may be a Lead there)."""
    mapper = SalesforceMapper(SALESFORCE)
    known = SalesforceRecordRef.model_validate(mapper(change("r1", "delete", contact_type="customer")).payload)
    unknown = SalesforceRecordRef.model_validate(mapper(change("r1", "delete")).payload)
    assert set(known.sobject_types) == set(unknown.sobject_types) == {"Lead", "Contact"}


def test_mailchimp_member_status_and_merge_fields() -> None:
    """Subscribed contacts are subscribed members, others unsubscribed, with merge fields as text."""
    mapper = MailchimpMapper(MAILCHIMP)
    record = mapper(change("r1", version=5, subscribed=True, **FULL))
    member = MailchimpMember.model_validate(record.payload)
    assert record.key == hashlib.md5(b"ann@example.com").hexdigest()
    assert member == MailchimpMember(email_address="ann@example.com", status="subscribed", merge_fields={
        "FNAME": "Ann", "LNAME": "Lee", "PHONE": "+14155550100", "COMPANY": "Acme", "CSID": "r1",
        "CSVERSION": "5"})
    assert mapper(change("r2", email="b@x.org")).payload["status"] == "unsubscribed"


def test_mailchimp_needs_an_email() -> None:
    """Without an email neither an upsert nor a delete can be mapped for Mailchimp."""
    mapper = MailchimpMapper(MAILCHIMP)
    with pytest.raises(MappingError) as raised:
        mapper(change("r1", first_name="Ann"))
    assert isinstance(raised.value, PermanentError)
    with pytest.raises(MappingError):
        mapper(change("r1", "delete"))
    ref = MailchimpMemberRef.model_validate(mapper(change("r1", "delete", email="A@x.org")).payload)
    assert ref.subscriber_hash == hashlib.md5(b"a@x.org").hexdigest()


@pytest.mark.parametrize("mapper", [HubSpotMapper(HUBSPOT), SalesforceMapper(SALESFORCE),
                                    MailchimpMapper(MAILCHIMP)])
def test_upsert_without_contact_is_a_mapping_error(mapper: HubSpotMapper) -> None:
    """An upsert that carries no contact cannot be mapped by any provider."""
    bare = change("r1").model_copy(update={"contact": None})
    with pytest.raises(MappingError):
        mapper(bare)


def test_mapping_files_are_checked() -> None:
    """A field map naming a non-Contact field, or a file of the wrong shape, is refused."""

    class Fields(MappingFile):
        fields: FieldMap

    class Other(MappingFile):
        something_else: str

    with pytest.raises(ValidationError):
        Fields.model_validate({"fields": {"nickname": "Nick"}})
    with pytest.raises(ConfigError):
        load_mapping("hubspot", Other)
    with pytest.raises(ConfigError):
        load_mapping("no-such-provider", Other)


async def test_registry_builds_enabled_providers_only() -> None:
    """build_providers and build_mappers return the enabled providers, each under its own name."""
    settings = ProvidersSettings(
        hubspot=HUBSPOT, salesforce=SALESFORCE.model_copy(update={"enabled": False}),
        mailchimp=MAILCHIMP.model_copy(update={"api_key": SecretStr("k-us1")}))
    providers = build_providers(settings)
    assert {name: p.name for name, p in providers.items()} == {"hubspot": "hubspot",
                                                                "mailchimp": "mailchimp"}
    for provider in providers.values():
        await provider.aclose()
    mappers = build_mappers(settings)
    assert sorted(mappers) == ["hubspot", "mailchimp"]
    assert mappers["mailchimp"](change("r1", email="a@b.co")).provider == "mailchimp"
    with pytest.raises(ConfigError):
        build_provider(settings, "salesforce")


async def test_one_provider_builds_without_the_others_configured() -> None:
    """build_provider builds one lane's adapter even when another lane lacks its credentials."""
    settings = ProvidersSettings(hubspot=HUBSPOT)  # Mailchimp has no API key here
    with pytest.raises(ConfigError):
        build_providers(settings)
    provider = build_provider(settings, "hubspot")
    assert provider.name == "hubspot"
    await provider.aclose()
