"""Finding our record id at the platform when a notification does not carry it: HubSpot's events
name the object only, Mailchimp's ``cleaned`` and ``upemail`` the address only.

One batch read per HubSpot notification for the objects not yet known (a worker remembers up to
``settings.webhooks.id_cache_size`` of them: an object's contactsync_id never changes once set);
one member read for such a Mailchimp event. A failed read is a ``LookupFailedError``: the receiver
answers 503 and the platform sends the notification again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import httpx

from pipeline.providers.hubspot import credentials as hubspot_credentials
from pipeline.providers.mailchimp import credentials as mailchimp_credentials
from pipeline.providers.mailchimp import subscriber_hash
from pipeline.settings import HubSpotSettings, MailchimpSettings
from pipeline.webhooks.fields import hubspot_fields, mailchimp_fields

READ_BATCH = 100  # HubSpot's batch read limit


class LookupFailedError(Exception):
    """The platform did not say which record a notification is about (it will be sent again)."""


class HubSpotRecordIds:
    """contactsync_id of HubSpot objects, read in batches and remembered."""

    def __init__(self, settings: HubSpotSettings, cache_size: int, transport: httpx.AsyncBaseTransport | None) -> None:
        self._client = httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_s, transport=transport,
            headers={"Authorization": f"Bearer {hubspot_credentials(settings)}"},
        )
        self._known: OrderedDict[int, str] = OrderedDict()
        self._size = cache_size

    async def record_ids(self, object_ids: Iterable[int], *, archived: bool = False) -> dict[int, str | None]:
        """Each object's contactsync_id (None: it has none, or HubSpot does not know the object)."""
        wanted = set(object_ids)
        found: dict[int, str | None] = {oid: self._known[oid] for oid in wanted if oid in self._known}
        missing = sorted(wanted - set(found))
        for start in range(0, len(missing), READ_BATCH):
            found |= await self._read(missing[start:start + READ_BATCH], archived)
        return found

    async def _read(self, object_ids: list[int], archived: bool) -> dict[int, str | None]:
        id_property = hubspot_fields().record_id
        inputs = [{"id": str(oid)} for oid in object_ids]
        body = {"inputs": inputs, "properties": [id_property], "propertiesWithHistory": []}
        try:
            response = await self._client.post(
                "/crm/v3/objects/contacts/batch/read", json=body, params={"archived": str(archived).lower()}
            )
        except httpx.HTTPError as exc:
            raise LookupFailedError(f"hubspot batch read: {type(exc).__name__}") from exc
        if response.status_code not in (200, 207):
            raise LookupFailedError(f"hubspot batch read answered {response.status_code}")
        found: dict[int, str | None] = dict.fromkeys(object_ids)
        for result in response.json().get("results", []):
            record_id = (result.get("properties") or {}).get(id_property)
            found[int(result["id"])] = record_id or None
            if record_id:
                self._remember(int(result["id"]), record_id)
        return found

    def _remember(self, object_id: int, record_id: str) -> None:
        self._known[object_id] = record_id
        self._known.move_to_end(object_id)
        while len(self._known) > self._size:
            self._known.popitem(last=False)

    async def aclose(self) -> None:
        await self._client.aclose()


class MailchimpRecordIds:
    """CSID of a Mailchimp member, read by address."""

    def __init__(self, settings: MailchimpSettings, transport: httpx.AsyncBaseTransport | None) -> None:
        key, base_url = mailchimp_credentials(settings)
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=settings.timeout_s, transport=transport, auth=httpx.BasicAuth("contactsync", key)
        )
        self._list_id = settings.list_id

    async def record_id(self, email: str) -> str | None:
        try:
            response = await self._client.get(f"/lists/{self._list_id}/members/{subscriber_hash(email)}")
        except httpx.HTTPError as exc:
            raise LookupFailedError(f"mailchimp member read: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise LookupFailedError(f"mailchimp member read answered {response.status_code}")
        return (response.json().get("merge_fields") or {}).get(mailchimp_fields().record_id) or None

    async def aclose(self) -> None:
        await self._client.aclose()
