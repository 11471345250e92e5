"""Mailchimp list webhooks: a form-encoded POST per event, read into an inbound change.

Mailchimp signs nothing, so the URL registered carries a secret (``/webhooks/mailchimp/<secret>``).
Events: ``subscribe``, ``unsubscribe``, ``profile``, ``upemail``, ``cleaned``; ``fired_at`` is
``YYYY-MM-DD HH:MM:SS`` in UTC. ``subscribe``, ``unsubscribe`` and ``profile`` carry the merge fields,
our record id (CSID) and version (CSVERSION) among them. ``cleaned`` and ``upemail`` carry only
addresses: the receiver finds the member's CSID with one read (``pipeline.webhooks.lookup``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from pipeline.webhooks.fields import as_version, mailchimp_fields
from pipeline.webhooks.receiving import malformed, minted_id
from schemas.inbound import FieldValue, InboundChange

PROVIDER = "mailchimp"
EVENT_TYPES = frozenset({"subscribe", "unsubscribe", "profile", "upemail", "cleaned"})
_MERGE = "data[merges]["


@dataclass(frozen=True)
class MailchimpEvent:
    kind: str
    fired_at_ms: int
    list_id: str
    email: str  # the address the event is about (upemail: the new one)
    member_id: str
    merges: dict[str, str]


def parse_event(body: bytes) -> MailchimpEvent:
    """The event of one form-encoded POST; a 400 refusal saying what is wrong."""
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise malformed(f"not a form-encoded Mailchimp event: {exc}") from None
    kind = form.get("type", "")
    if kind not in EVENT_TYPES:
        raise malformed(f"type must be one of {', '.join(sorted(EVENT_TYPES))}")
    try:
        fired = datetime.strptime(form.get("fired_at", ""), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise malformed("fired_at must be YYYY-MM-DD HH:MM:SS") from None
    email = form.get("data[new_email]" if kind == "upemail" else "data[email]", "").strip()
    if not email:
        raise malformed(f"a {kind} event needs data[{'new_email' if kind == 'upemail' else 'email'}]")
    merges = {key[len(_MERGE):-1]: value for key, value in form.items() if key.startswith(_MERGE) and key.endswith("]")}
    member_id = form.get("data[new_id]" if kind == "upemail" else "data[id]", "") or email.lower()
    return MailchimpEvent(kind, int(fired.timestamp() * 1000), form.get("data[list_id]", ""), email, member_id, merges)


def record_id_of(event: MailchimpEvent) -> str | None:
    """Our record id when the event carries it (CSID)."""
    return event.merges.get(mailchimp_fields().record_id) or None


def inbound_change(event: MailchimpEvent, record_id: str | None, received_at_ms: int) -> InboundChange:
    """The change; ``record_id`` None: the member holds none (created at Mailchimp)."""
    mapping = mailchimp_fields()
    fields: dict[str, FieldValue] = mapping.read(event.merges)
    fields["email"] = event.email
    if event.kind in ("subscribe", "unsubscribe", "cleaned"):
        fields["subscribed"] = event.kind == "subscribe"
    return InboundChange(
        record_id=record_id or minted_id(PROVIDER, event.member_id),
        provider=PROVIDER,
        platform_id=event.member_id,
        new_record=record_id is None,
        kind=event.kind,
        occurred_at_ms=event.fired_at_ms,
        received_at_ms=received_at_ms,
        fields=fields,
        platform_version=as_version(event.merges.get(mapping.version)),
    )
