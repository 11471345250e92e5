"""Mailchimp Marketing API 3.0: audience members.

Upserts: batch subscribe ``POST /lists/{list_id}`` with ``update_existing`` (per-member failures in
the 200 body's ``errors[]``); a member whose email changed is first moved to the new address with
``PATCH /lists/{list_id}/members/{old_hash}``. Deletes: ``DELETE /lists/{list_id}/members/{subscriber_hash}`` (archive);
404 means already gone. These requests go through :mod:`.mailchimp_batches`: one by one
(never more than ``settings.max_in_flight`` at once for the whole adapter: Mailchimp refuses an 11th
simultaneous connection), or, where the lane would send them one by one slower than a batch comes
back (``batch_threshold``), together as one ``POST /batches``, each answered by its own operation's
result (a batch subscribe's operation by the same body as the direct call's).

Order. Mailchimp does not promise to run a batch's operations in order, so a delivery asks for its
batch subscribe together with its moves (they may share a batch) only for the members whose address
no move of the same delivery leaves or takes; those, and the moved members whose move answered 404
(no old member) or 400 (new address taken: the old one is archived), are subscribed once the moves
are answered, as every subscribe was before. Guaranteed: within one ``deliver`` call, a move and a
subscribe of the same address run in that order. Not guaranteed: that order between the adapter's
concurrent deliveries (the dispatcher sends the chunks of a wave together): a subscribe of an
address another chunk's move leaves may run before that move, or beside it in one batch, and the
move then carries the subscribed member to the new address. This was so before subscribes joined
batches too (a chunk without moves subscribed at once while another chunk's moves waited for their
batch). It needs an address one record leaves and another takes in the same dispatch (a swap, an
email reused at once), which the records' own order does not cover: they are different records.

The member id is the MD5 of the email, so a record whose email changed lives under a new id. Besides
the member the record is held under (``previous_key``), an earlier send whose outcome is unknown
may have left a member under another address (``stray_keys``): those are archived once the record
is upserted, and with it when it is deleted.

Two records can hold one email in turn (a primary-key update moves a record to a new key with the
same email, or an email is reused), and their changes travel on different partitions. So a member
is archived only while it is still the deleted record's: a ``GET`` of the member (just its status
and record id merge field) comes before each ``DELETE``, and a member another record holds now is
left alone. That costs one GET per live member archived; a member already gone costs one request
as before (the GET's 404 instead of the DELETE's), since Mailchimp's DELETE answers 204 with no body
and cannot be made conditional. A write of the other record between the GET and the DELETE is not
covered: a few milliseconds with direct requests, the round of a batch (its poll and the next
batch's start, seconds) when the GETs and DELETEs go as batch operations.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import httpx
from pydantic import BaseModel, TypeAdapter

from pipeline.errors import ConfigError, DeliveryError, MappingError, PermanentError, RetryableError
from pipeline.providers.base import DeliveryResult
from pipeline.providers.credentials import credential
from pipeline.providers.http import Answer, ProviderClient, classify_status, clip, error_body, http_transport, parse
from pipeline.providers.ledger import Entry, Ledger
from pipeline.providers.mailchimp_batches import MemberRequests
from pipeline.providers.mapping import ChangeMapper, FieldMap, MappingFile, apply_fields, load_mapping
from pipeline.settings import MailchimpSettings
from schemas.contact import Contact, ContactChange, ContactField
from schemas.dispatch import DispatchRecord
from schemas.providers import MailchimpMember, MailchimpMemberRef

NAME = "mailchimp"
_THROTTLE_S = 1.0  # a 429 for too many connections clears as soon as one closes


class _MemberError(Answer):
    email_address: str = ""
    error: str = ""
    error_code: str = ""
    field: str = ""

    def as_error(self) -> DeliveryError:
        """Mailchimp names the field of data it refuses; a field-less ERROR_GENERIC ("could not be
        saved at this time", signup throttling) may pass on a later try, so it is retried and only
        dead-lettered after the last retry tier."""
        message = clip(f"Mailchimp {self.error_code}: {self.error}")
        if self.field or self.error_code != "ERROR_GENERIC":
            return PermanentError(message, code=self.error_code)
        return RetryableError(message, code=self.error_code)


class MemberHolder(Answer):
    """What a member GET (``fields=status,merge_fields.<record id tag>``) says of who holds it."""

    status: str = ""
    merge_fields: dict[str, object] = {}


def may_archive(member: MemberHolder, record_id: str, record_id_tag: str) -> bool:
    """True while a delete of ``record_id`` may archive ``member``: it is live, and its record id
    merge field names that record, or none (a member contactsync never wrote). A member another
    record holds now (the new key of a primary-key update, a reused email) is not the delete's."""
    holder = member.merge_fields.get(record_id_tag)
    return member.status != "archived" and (holder in (None, "") or str(holder) == record_id)


class _BatchAnswer(Answer):
    errors: list[_MemberError] = []


class _Problem(Answer):
    title: str = ""
    detail: str = ""


_BATCH_ANSWER = TypeAdapter(_BatchAnswer)
_HOLDER = TypeAdapter(MemberHolder)
_PROBLEM = TypeAdapter(_Problem)


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased email address."""
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def credentials(settings: MailchimpSettings) -> tuple[str, str]:
    """The API key, and the API's base URL: ``settings.base_url``, else
    ``https://<dc>.api.mailchimp.com/3.0`` from the key's ``-<dc>`` (ConfigError when either is missing)."""
    key = credential(settings.api_key, "CONTACTSYNC_PROVIDERS__MAILCHIMP__API_KEY")
    if settings.base_url:
        return key, settings.base_url
    _, dash, dc = key.rpartition("-")
    if not dash or not dc.isalnum():
        raise ConfigError(
            "the Mailchimp API key has no data center suffix (like -us6): set "
            "CONTACTSYNC_PROVIDERS__MAILCHIMP__API_KEY to the whole key, or "
            "CONTACTSYNC_PROVIDERS__MAILCHIMP__BASE_URL"
        )
    return key, f"https://{dc}.api.mailchimp.com/3.0"


class MailchimpProvider:
    """Delivers dispatch records to one Mailchimp audience (``settings.list_id``).

    ``transport`` carries API requests (the dispatcher's is rate-limited by the lane);
    ``storage_transport`` the fetch of batch results from storage, which is not the API.
    """

    name = NAME

    def __init__(
        self,
        settings: MailchimpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        storage_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key, base_url = credentials(settings)
        self._list_path = f"/lists/{settings.list_id}"
        self._record_id_tag = load_mapping(NAME, _Mapping).record_id
        self._http = ProviderClient(
            settings,
            base_url=base_url,
            classify=_classify,
            auth=httpx.BasicAuth("contactsync", key),
            transport=transport,
        )
        self._storage = httpx.AsyncClient(timeout=settings.timeout_s, transport=storage_transport or http_transport())
        self._members = MemberRequests(settings, self._http, self._storage, _classify)

    async def deliver(self, batch: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        ledger = Ledger(batch)
        await ledger.run(ledger.entries("upsert", MailchimpMember), self._move_then_subscribe)
        await ledger.run(ledger.entries("delete", MailchimpMemberRef), self._archive_all)
        return ledger.results()

    async def aclose(self) -> None:
        await self._members.aclose()
        await self._storage.aclose()
        await self._http.aclose()

    async def _move_then_subscribe(self, entries: Sequence[Entry[MailchimpMember]]) -> list[DeliveryResult]:
        """Members whose email changed are moved to it, so the old address is not left subscribed;
        the rest are subscribed in one call asked for with the moves (so it may ride in their batch),
        except those whose address a move of this delivery leaves or takes, and the moved members
        that had no old member to move (or whose new address was taken): those are subscribed once
        the moves are answered."""
        moving = [entry for entry in entries if entry.record.previous_key not in (None, entry.record.key)]
        touched = {key for entry in moving for key in (entry.record.previous_key, entry.record.key)}
        free = [entry for entry in entries if entry.record.key not in touched]
        moves, subscribed = await asyncio.gather(
            asyncio.gather(*(self._move(entry) for entry in moving)), self._subscribe_all(free)
        )
        upserted = {entry.index: result for entry, result in zip(moving, moves, strict=True) if result is not None}
        upserted |= {entry.index: result for entry, result in zip(free, subscribed, strict=True)}
        after = [entry for entry in entries if entry.index not in upserted]
        upserted |= {entry.index: result for entry, result in zip(after, await self._subscribe_all(after), strict=True)}
        return list(await asyncio.gather(*(self._archive_strays(entry, upserted[entry.index]) for entry in entries)))

    async def _archive_strays(self, entry: Entry[MailchimpMember], upserted: DeliveryResult) -> DeliveryResult:
        """Once the record is upserted, archive the members an unconfirmed earlier send may have
        left under other addresses; the record is delivered when none of them is live any more."""
        strays = [key for key in entry.record.stray_keys if key != entry.record.key]
        if not upserted.ok or not strays:
            return upserted
        _, error = await self._archive_members(strays, entry.record.record_id)
        return upserted if error is None else entry.failed(error)

    async def _move(self, entry: Entry[MailchimpMember]) -> DeliveryResult | None:
        """PATCH the old member with the whole new version, its new email included; when the new
        email is a member already, archive the old one instead.

        The result when the move settled the record; None when it still has to be subscribed.
        """
        old = f"{self._list_path}/members/{entry.record.previous_key}"
        try:
            await self._members.request("PATCH", old, json=entry.payload.model_dump())
            return entry.ok(subscriber_hash(entry.payload.email_address))
        except DeliveryError as error:
            if error.status == 404:
                return None
            if error.status != 400:
                return entry.failed(error)
            try:
                await self._members.request("DELETE", old)
            except DeliveryError as archive_error:
                return None if archive_error.status == 404 else entry.failed(archive_error)
        return None

    async def _subscribe_all(self, entries: Sequence[Entry[MailchimpMember]]) -> list[DeliveryResult]:
        """One batch subscribe of ``entries`` (none: no request); a failure of the whole call is each
        entry's result, and the moves that went through beside it stand."""
        if not entries:
            return []
        try:
            return await self._subscribe(entries)
        except DeliveryError as error:
            return [entry.failed(error) for entry in entries]

    async def _subscribe(self, entries: Sequence[Entry[MailchimpMember]]) -> list[DeliveryResult]:
        body = {"members": [entry.payload.model_dump() for entry in entries], "update_existing": True}
        answer = parse(await self._members.request("POST", self._list_path, json=body), _BATCH_ANSWER)
        sent = {entry.payload.email_address.lower() for entry in entries}
        failed = {error.email_address.lower(): error for error in answer.errors}
        # An error naming no member of the batch might be about any of them: none is confirmed.
        unattributed = not failed.keys() <= sent
        results = []
        for entry in entries:
            email = entry.payload.email_address.lower()
            if email in failed:
                results.append(entry.failed(failed[email].as_error()))
            elif unattributed:
                message = "Mailchimp reported an error it did not attribute to a member"
                results.append(entry.failed(RetryableError(message, code="unattributed")))
            else:
                results.append(entry.ok(subscriber_hash(email)))
        return results

    async def _archive_all(self, entries: Sequence[Entry[MailchimpMemberRef]]) -> list[DeliveryResult]:
        return list(await asyncio.gather(*(self._archive(entry) for entry in entries)))

    async def _archive(self, entry: Entry[MailchimpMemberRef]) -> DeliveryResult:
        """Archive the member, the one under the address it had if that was never moved, and any
        an unconfirmed send may have left elsewhere."""
        record = entry.record
        members = [entry.payload.subscriber_hash, *filter(None, [record.previous_key]), *record.stray_keys]
        archived, error = await self._archive_members(list(dict.fromkeys(members)), record.record_id)
        return entry.failed(error) if error is not None else entry.ok(archived[0] if archived else None)

    async def _archive_members(
        self, members: Sequence[str], record_id: str
    ) -> tuple[list[str], DeliveryError | None]:
        """Archive each member that ``record_id`` still holds (``may_archive``), all at once: those
        archived, and the first error that is not a 404 (not in the audience: already gone, like a
        delete that finds nothing elsewhere)."""
        outcomes = await asyncio.gather(*(self._archive_member(member, record_id) for member in members))
        archived = [member for member, outcome in zip(members, outcomes, strict=True) if outcome is True]
        errors = [outcome for outcome in outcomes if isinstance(outcome, DeliveryError)]
        return archived, errors[0] if errors else None

    async def _archive_member(self, member: str, record_id: str) -> bool | DeliveryError:
        """True: archived; False: gone, or another record's; else the error."""
        path = f"{self._list_path}/members/{member}"
        fields = {"fields": f"status,merge_fields.{self._record_id_tag}"}
        try:
            holder = parse(await self._members.request("GET", path, params=fields), _HOLDER)
            if not may_archive(holder, record_id, self._record_id_tag):
                return False
            await self._members.request("DELETE", path)
        except DeliveryError as error:
            return False if error.status == 404 else error
        return True


def _classify(response: httpx.Response) -> DeliveryError:
    """Mailchimp's status and problem document as our error; 429 waits Retry-After or 1 s."""
    problem = error_body(response, _PROBLEM, _Problem())
    message = f"Mailchimp {response.status_code} {problem.title}: {problem.detail}"
    return classify_status(response, message=message, code=problem.title, throttle_after=_THROTTLE_S)


class _Mapping(MappingFile):
    email_address: ContactField
    status_subscribed: str
    status_unsubscribed: str
    merge_fields: FieldMap
    record_id: str
    version: str


class MailchimpMapper(ChangeMapper):
    """Contact changes to batch subscribe members, from ``pipeline/mappings/mailchimp.yaml``."""

    provider = NAME

    def __init__(self, settings: MailchimpSettings) -> None:  # noqa: ARG002 - one mapper signature
        self._mapping = load_mapping(NAME, _Mapping)

    def upsert(self, change: ContactChange, contact: Contact) -> tuple[str, BaseModel]:
        mapping = self._mapping
        email = self._email(contact)
        merge_fields = apply_fields(contact, mapping.merge_fields) | {
            mapping.record_id: change.record_id,
            mapping.version: str(change.version),
        }
        status = mapping.status_subscribed if contact.subscribed else mapping.status_unsubscribed
        member = MailchimpMember(email_address=email, status=status, merge_fields=merge_fields)
        return subscriber_hash(email), member

    def delete(self, change: ContactChange) -> tuple[str, BaseModel]:
        email = self._email(change.contact)
        return subscriber_hash(email), MailchimpMemberRef(subscriber_hash=subscriber_hash(email))

    def _email(self, contact: Contact | None) -> str:
        value = getattr(contact, self._mapping.email_address) if contact is not None else None
        if not value:
            raise MappingError("mailchimp: the contact has no email address", code="no_email")
        return str(value)
