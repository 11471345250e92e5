"""The canonical contact and its change, as the pipeline carries them after validation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from schemas.cdc import ContactFields


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contact(ContactFields, _Message):
    """A contact in canonical form (normalised by the transform stage)."""

    id: str


class ContactChange(_Message):
    """One change of one contact (``contacts.validated``).

    ``version`` is strictly monotonic per record at the source: the Postgres LSN, else the source
    time with the source's log position (or the Kafka offset) as tie-breaker; the plain form's
    ``ts * 1000 + seq`` (``pipeline.stages.validate`` says what orders what). One deployment
    uses one CDC source, so versions of a record compare. A delete may carry no contact (the CDC
    tool only knew the key). ``unavailable_fields`` are fields the CDC tool did not send (Debezium's
    placeholder for an unchanged TOASTed column): they keep their last known value.

    ``replaces`` is the record an update of the source's primary key moved this one from (the
    create of the new key names the old one, Debezium's ``__debezium.oldkey`` header): its delete
    travels on another partition, so a platform may still hold the old record under the same email.

    ``created`` marks the row's insert at the source (Debezium's ``c``, the plain form's ``c``): no
    version of the record came before it since the row last did not exist. A snapshot read, an
    update or a platform's change does not say so.
    """

    record_id: str
    op: Literal["upsert", "delete"]
    version: int
    source_ts_ms: int
    captured_at_ms: int
    contact: Contact | None = None
    origin: str = "source"  # or the provider whose change came back (pipeline.stages.conflict)
    unavailable_fields: tuple[str, ...] = ()
    replaces: str | None = None
    created: bool = False


class KnownContact(_Message):
    """What the transform stage remembers of a record: its newest contact and every provider it
    was ever routed to (a delete must reach all of them, even after the contact's type changed);
    and what keeps a platform's unsubscribe (``pipeline.stages.transform.keep_unsubscribed``).
    ``version`` is the change it was last set from, so that an older one read again leaves it be."""

    contact: Contact
    version: int | None = None  # None in rows written before it was kept
    routed_to: list[str] = []
    source_subscribed: bool | None = None  # what the source's last change said (None: not seen)
    unsubscribed_by: str | None = None  # the platform whose unsubscribe holds until the source changes it


class RuleVerdict(_Message):
    """What one rule said about a change."""

    rule: str
    passed: bool
    reason: str = ""


class DroppedField(_Message):
    """A field the pipeline left out of a contact, and why (never its value: it may be a phone)."""

    field: str
    reason: str


class TransformedChange(_Message):
    """A normalised change with its rule verdicts and target providers (``contacts.transformed``),
    and the fields normalising dropped from the contact (an unparseable phone)."""

    change: ContactChange
    verdicts: list[RuleVerdict]
    targets: list[str]
    dropped_fields: tuple[DroppedField, ...] = ()  # none in messages written before it existed

    @property
    def stopped_by(self) -> RuleVerdict | None:
        """The first rule that stops this change, if any."""
        return next((verdict for verdict in self.verdicts if not verdict.passed), None)


def _contact_field(name: str) -> str:
    if name not in Contact.model_fields:
        raise ValueError(f"{name!r} is not a contact field (fields: {', '.join(Contact.model_fields)})")
    return name


ContactField = Annotated[str, AfterValidator(_contact_field)]
"""The name of a canonical ``Contact`` field (in settings, mappings and rules)."""
