"""What the route stage sends a provider's dispatcher, and what a delivery comes to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.contact import DroppedField

DeliveryState = Literal[
    "queued", "delivered", "skipped_by_rule", "retrying", "superseded", "dead_lettered", "unrouted"
]
TERMINAL_STATES: frozenset[str] = frozenset(
    {"delivered", "skipped_by_rule", "superseded", "dead_lettered", "unrouted"}
)
NO_PROVIDER = "none"
"""The provider of an ``unrouted`` outcome: the change goes to no provider (its error says why)."""


class DispatchRecord(BaseModel):
    """One record for one provider (``contacts.dispatch.<provider>``).

    ``payload`` is the provider's own body for this record (validated by the provider's payload
    model in ``schemas.providers``); ``key`` is the provider's stable upsert key for the record.
    ``previous_key``, ``stray_keys`` and ``provider_ids`` come from the version guard
    (:class:`Delivered`) just before the send: an adapter whose key can change (Mailchimp's is the
    email's hash) cleans the keys up; one keyed by the record id never sees them differ from
    ``key``. With ``provider_ids`` (None: unknown) an adapter deletes by the platform's own ids
    without looking them up first. ``replaces`` and ``created`` are the change's (``ContactChange``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    provider: str
    op: Literal["upsert", "delete"]
    version: int
    source_ts_ms: int
    captured_at_ms: int
    key: str
    payload: dict[str, Any]
    previous_key: str | None = None  # set by the dispatcher: the key the provider holds it under now
    stray_keys: tuple[str, ...] = ()  # set by the dispatcher: keys it may hold it under too (Delivered)
    provider_ids: tuple[str, ...] | None = None  # set by the dispatcher: the provider's ids for it (Delivered)
    dropped_fields: tuple[DroppedField, ...] = ()  # left out of the contact by the transform stage
    replaces: str | None = None  # the record a primary-key update moved this one from
    created: bool = False  # the row's insert at the source


class Delivered(BaseModel):
    """A row of a provider's version guard: the newest version it holds, under which key, and the
    keys it may hold the record under too.

    ``stray_keys`` are keys an upsert went to, other than ``key``, whose outcome is unknown (a
    timeout or a 5xx: the provider may have applied it). The dispatcher hands them to the adapter
    with the next send, which removes whatever lives there (Mailchimp archives those members); a
    confirmed delivery forgets the strays it cleaned. ``version`` and ``key`` are None while no
    version of the record has been confirmed; ``key`` is None after a confirmed delete too. Rows
    written before stray keys existed read with none.

    ``sent_version`` is the newest version ever sent, written (and its changelog acknowledged)
    before the request goes out: after a crash between a send and its answer, the provider may hold
    that version, so anything older is superseded, and a replay never writes an older version over
    a newer one that landed.

    ``provider_ids`` are the platform's own ids for the record (HubSpot's object id, Salesforce's
    record Ids), from the answers to confirmed sends: every object the pipeline's sends left it
    under, () after a confirmed delete. None when unknown: rows written before ids were kept, and
    adapters whose key is the id (Mailchimp's member id is the email's hash). They hold only while
    no send is outstanding (``sent_version`` not above ``version``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int | None
    key: str | None
    stray_keys: tuple[str, ...] = ()
    sent_version: int | None = None
    provider_ids: tuple[str, ...] | None = None


class Outcome(BaseModel):
    """One delivery result (``contacts.outcomes``): the audit trail behind status and metrics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    provider: str
    version: int
    state: DeliveryState
    at_ms: int
    source_ts_ms: int
    attempts: int = 1  # requests that carried this version (0: none, such as a delete of a record never sent)
    provider_id: str | None = None
    error: str | None = None
    dropped_fields: tuple[DroppedField, ...] = ()  # left out of the contact this version delivered
