"""HubSpot webhooks v3: the signature, and a batch of contact events read into inbound changes.

``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(client secret, method + URI + body + timestamp)),
``X-HubSpot-Request-Timestamp`` in milliseconds; a timestamp older than the allowed age is refused
(a replayed request). The URI is the one HubSpot called, so behind a proxy it is rebuilt from
``settings.webhooks.public_url``.

The events of one object at one moment (one save changes several properties) become one inbound
change. ``contactsync_version`` is ours alone: its value is the version the platform holds, and an
event group touching only our own properties is an echo. ``hs_email_optout`` true is an unsubscribe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from pipeline.webhooks.fields import as_version, hubspot_fields
from pipeline.webhooks.receiving import malformed, minted_id, unauthorized
from schemas.inbound import FieldValue, InboundChange

PROVIDER = "hubspot"
OPT_OUT_PROPERTY = "hs_email_optout"
EventType = Literal["contact.propertyChange", "contact.creation", "contact.deletion"]


class HubSpotEvent(BaseModel):
    """One event of a webhook batch (HubSpot sends more keys: kept out, not refused)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    objectId: int  # noqa: N815 - HubSpot's names
    subscriptionType: str  # noqa: N815
    occurredAt: int  # noqa: N815
    propertyName: str | None = None  # noqa: N815
    propertyValue: str | None = None  # noqa: N815


_BATCH = TypeAdapter(list[HubSpotEvent])


def signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The v3 signature HubSpot sends for this request."""
    message = method.upper().encode() + unquote(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def check_signature(
    secret: str, method: str, uri: str, body: bytes, headers: Mapping[str, str], now_ms: int, max_age_s: float
) -> None:
    """Nothing when HubSpot sent the request; else a 401 refusal saying why."""
    timestamp = headers.get("X-HubSpot-Request-Timestamp", "")
    given = headers.get("X-HubSpot-Signature-v3", "")
    if not timestamp.isdigit() or not given:
        raise unauthorized("X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required")
    if abs(now_ms - int(timestamp)) > max_age_s * 1000:
        raise unauthorized(f"the timestamp is more than {max_age_s:g} s away from now", "stale")
    if not hmac.compare_digest(given.encode(), signature(secret, method, uri, body, timestamp).encode()):
        raise unauthorized("the signature does not match")


def parse_events(body: bytes) -> list[HubSpotEvent]:
    """The batch's contact events (others are ignored); a 400 refusal when it is not a batch."""
    try:
        events = _BATCH.validate_json(body)
    except ValidationError as exc:
        problem = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise malformed(f"not a HubSpot event batch: {where}: {problem['msg']}") from None
    return [event for event in events if event.subscriptionType.startswith("contact.")]


def inbound_changes(
    events: list[HubSpotEvent], record_ids: Mapping[int, str | None], received_at_ms: int
) -> list[InboundChange]:
    """One change per object and moment; ``record_ids``: each object's contactsync_id (None: none).

    A creation comes with the propertyChange events of the properties it set, at the same moment:
    one change, of kind ``contact.creation`` (so our own create's echo is recognised by its values).
    """
    groups: dict[tuple[int, int], list[HubSpotEvent]] = {}
    for event in events:
        groups.setdefault((event.objectId, event.occurredAt), []).append(event)
    return [
        _change(object_id, occurred_at, _kind(group), group, record_ids.get(object_id), received_at_ms)
        for (object_id, occurred_at), group in groups.items()
    ]


def _kind(group: list[HubSpotEvent]) -> str:
    kinds = {event.subscriptionType for event in group}
    return next((kind for kind in ("contact.deletion", "contact.creation") if kind in kinds), "contact.propertyChange")


def _change(
    object_id: int, occurred_at: int, kind: str, group: list[HubSpotEvent], record_id: str | None, received_at_ms: int
) -> InboundChange:
    mapping = hubspot_fields()
    changed = {event.propertyName: event.propertyValue for event in group if event.propertyName}
    fields: dict[str, FieldValue] = mapping.read(changed)
    if OPT_OUT_PROPERTY in changed:
        fields["subscribed"] = (changed[OPT_OUT_PROPERTY] or "").lower() != "true"
    own = {mapping.record_id, mapping.version}
    return InboundChange(
        record_id=record_id or minted_id(PROVIDER, str(object_id)),
        provider=PROVIDER,
        platform_id=str(object_id),
        new_record=record_id is None,
        kind=kind,
        op="delete" if kind == "contact.deletion" else "upsert",
        occurred_at_ms=occurred_at,
        received_at_ms=received_at_ms,
        fields=fields,
        platform_version=as_version(changed.get(mapping.version)),
        echo_only=kind == "contact.propertyChange" and bool(changed) and set(changed) <= own,
    )
