"""Provider payloads: what each platform receives for one record (``DispatchRecord.payload``).

The route stage builds one of these and stores its ``model_dump(mode="json")``; the adapter
validates the dict back into the model before sending. Field names are the platforms' own wire
names (see ``../shared/specs``), hence the camelCase of HubSpot's.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HubSpotUpsertInput(_Payload):
    """One input of HubSpot ``batch/upsert`` (``SimplePublicObjectBatchInputUpsert``).

    ``id`` is the value of the unique property ``idProperty``; property values are strings.
    """

    id: str
    idProperty: str  # noqa: N815 - HubSpot's wire name
    properties: dict[str, str]


class HubSpotObjectId(_Payload):
    """A contact to delete: the value of the adapter's unique id property (a ``batch/read`` input)."""

    id: str


class SObjectAttributes(_Payload):
    type: str


class SalesforceRecord(BaseModel):
    """One record of an sObject Collections upsert: ``attributes.type`` plus the fields to set.

    Fields are the SObject's API names (``LastName``, ``ContactSync_Id__c``...), as extra keys.
    """

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, str | int] = Field(init=False)

    attributes: SObjectAttributes


class SalesforceRecordRef(_Payload):
    """A record to delete, by external id, and the SObjects to look for it in (known type, or all)."""

    sobject_types: tuple[str, ...] = Field(min_length=1)


class MailchimpMember(_Payload):
    """One member of Mailchimp's batch subscribe (``AddListMembers``); merge field values are text."""

    email_address: str
    status: str
    merge_fields: dict[str, str]


class MailchimpMemberRef(_Payload):
    """A member to archive: the MD5 of the lower-cased email address."""

    subscriber_hash: str = Field(pattern=r"^[0-9a-f]{32}$")
