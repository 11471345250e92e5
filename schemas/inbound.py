"""Changes made at a platform, as they come back to us (``contacts.inbound``), what the conflict
stage decided about them (``contacts.changes.inbound``), and the conflict stage's row per record."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

FieldValue = str | bool | None


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InboundChange(_Message):
    """One platform notification about one record, in canonical field names (``contacts.inbound``).

    ``record_id`` is ours, read from the id property the platform holds; when it holds none (the
    contact was created at the platform) ``new_record`` is true and the id is minted from the
    platform's own (``<provider>-<platform id>``), the same for every retry of the notification.
    ``platform_version`` is our version property as the platform held it when it notified (None
    when the notification does not carry it). ``fields`` holds only what the notification says
    changed; ``echo_only`` marks a notification about our own properties alone (the version we wrote).
    """

    record_id: str
    provider: str
    platform_id: str
    new_record: bool = False
    kind: str  # the platform's event type: contact.propertyChange, unsubscribe, OutboundMessage, ...
    op: Literal["upsert", "delete"] = "upsert"
    occurred_at_ms: int  # the platform's time of the change
    received_at_ms: int
    fields: dict[str, FieldValue] = {}
    platform_version: int | None = None
    echo_only: bool = False


class FieldMark(_Message):
    """When a field of a record was last set, to what, and by whom (``source`` or a provider)."""

    value: FieldValue
    at_ms: int
    by: str


class RecordClock(_Message):
    """The conflict stage's row per record: each field's mark, the newest version seen, and the
    values of the last versions we sent (``sent``: version -> fields), to recognise our echoes."""

    version: int = 0
    deleted: bool = False
    fields: dict[str, FieldMark] = {}
    sent: dict[int, dict[str, FieldValue]] = {}


class FieldDecision(_Message):
    """Last writer wins, for one field: the platform's value and time against ours."""

    field: str
    value: FieldValue
    platform_at_ms: int
    ours_at_ms: int | None  # None: we never had the field
    ours_by: str | None
    ours_value: FieldValue = None  # what we held (set at ours_at_ms): the applier's check that the table still holds it
    winner: Literal["platform", "ours"]


class InboundResolved(_Message):
    """A platform change that won at least one field (``contacts.changes.inbound``), for the contacts
    database's owner to apply: the winning ``fields`` (canonical names), every decision with both
    times, and the version the pipeline gave the change on its way to the other platforms."""

    record_id: str
    provider: str
    platform_id: str
    new_record: bool
    op: Literal["upsert", "delete"]
    occurred_at_ms: int
    version: int
    fields: dict[str, FieldValue]
    decisions: list[FieldDecision]
