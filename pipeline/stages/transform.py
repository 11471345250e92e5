"""Normalise a change, apply the rules and decide which providers it goes to."""

from __future__ import annotations

import phonenumbers

from pipeline.settings import RoutingSettings
from schemas.contact import Contact, ContactChange, KnownContact, RuleVerdict, TransformedChange


def transform(
    change: ContactChange,
    known: KnownContact | None,
    routing: RoutingSettings,
    providers: tuple[str, ...],
) -> tuple[TransformedChange, KnownContact | None]:
    """Normalise the contact, route it and give each rule's verdict; and what to remember of it.

    A delete goes to every provider the record was ever routed to, and to every provider when the
    record was never seen: deleting a record a provider never had is harmless, keeping one it should
    not is not. It is routed by the last known contact, since the CDC tool may only know the key.
    An upsert also goes to every ``sticky`` provider that holds the record, so that an unsubscribe
    reaches Mailchimp. Rules stop upserts only.
    """
    contact = change.contact or (known.contact if known else None)
    normalised = normalise(contact, routing.default_phone_region) if contact else None
    change = change.model_copy(update={"contact": normalised})
    if change.op == "delete":
        targets = list(providers) if known is None else _union(known.routed_to, route(normalised, routing, providers), providers)
        return TransformedChange(change=change, verdicts=[], targets=targets), None
    assert normalised is not None  # an upsert always carries its row
    routed_to = list(known.routed_to) if known else []
    still_holding = [provider for provider in routed_to if provider in routing.sticky]
    result = TransformedChange(
        change=change,
        verdicts=apply_rules(normalised, routing),
        targets=_union(route(normalised, routing, providers), still_holding, providers),
    )
    if result.stopped_by is None:
        routed_to = _union(routed_to, result.targets, providers)
    return result, KnownContact(contact=normalised, routed_to=routed_to)


def _union(first: list[str], second: list[str], providers: tuple[str, ...]) -> list[str]:
    return [provider for provider in providers if provider in first or provider in second]


def normalise(contact: Contact, phone_region: str) -> Contact:
    """Email lower-cased and trimmed, phone in E.164 (dropped when unparseable), names tidied."""
    return contact.model_copy(
        update={
            "email": contact.email.strip().lower() if contact.email and contact.email.strip() else None,
            "phone": to_e164(contact.phone, phone_region),
            "first_name": tidy_name(contact.first_name),
            "last_name": tidy_name(contact.last_name),
            "company": _blank_to_none(contact.company),
            "title": _blank_to_none(contact.title),
            "contact_type": (contact.contact_type or "").strip().lower() or None,
        }
    )


def to_e164(phone: str | None, region: str) -> str | None:
    if not phone or not phone.strip():
        return None
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def tidy_name(name: str | None) -> str | None:
    """Collapse white space; fix ALL-CAPS or all-lower names, leave mixed case (McDonald) alone."""
    name = _blank_to_none(name)
    if name is None:
        return None
    name = " ".join(name.split())
    return name.title() if name.isupper() or name.islower() else name


def apply_rules(contact: Contact, routing: RoutingSettings) -> list[RuleVerdict]:
    verdicts = [
        RuleVerdict(
            rule=f"required:{field}",
            passed=bool(getattr(contact, field, None)),
            reason="" if getattr(contact, field, None) else f"{field} is missing",
        )
        for field in routing.required_fields
    ]
    verdicts.append(
        RuleVerdict(
            rule="do_not_sync",
            passed=not contact.do_not_sync,
            reason="contact is flagged do_not_sync" if contact.do_not_sync else "",
        )
    )
    return verdicts


def route(contact: Contact | None, routing: RoutingSettings, providers: tuple[str, ...]) -> list[str]:
    """The enabled providers this contact belongs at, in catalog order."""
    if contact is None:
        return []
    wanted = set(routing.by_contact_type.get(contact.contact_type or "", []))
    if contact.subscribed:
        wanted.update(routing.subscribed_to)
    return [provider for provider in providers if provider in wanted]


def _blank_to_none(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None
