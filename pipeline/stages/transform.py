"""Normalise a change, apply the rules and decide which providers it goes to."""

from __future__ import annotations

import functools

import phonenumbers

from pipeline.settings import RoutingSettings
from schemas.contact import Contact, ContactChange, DroppedField, KnownContact, RuleVerdict, TransformedChange

_PARSE_ERRORS = {  # phonenumbers' error types, in words that never quote the number
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "no valid country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


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
    reaches Mailchimp. Rules stop upserts only. A field the CDC tool did not send (an unchanged
    TOASTed column) keeps its last known value. A field normalising drops is named in the result.
    A platform's unsubscribe holds against the source's changes that leave the subscription alone.
    A change older than the last known one (a replay, a partition read again) is carried on, where
    the version guards settle it, but leaves the last known row as it is: ``known`` is returned.
    """
    result, remember = _transformed(change, known, routing, providers)
    if known is not None and known.version is not None and change.version < known.version:
        return result, known
    return result, remember


def _transformed(
    change: ContactChange,
    known: KnownContact | None,
    routing: RoutingSettings,
    providers: tuple[str, ...],
) -> tuple[TransformedChange, KnownContact | None]:
    filled, unknown = _with_known_values(change, known)
    if change.contact is not None and filled is not change.contact:
        change = change.model_copy(update={"contact": filled})
    change, unsubscribed_by, source_subscribed = keep_unsubscribed(change, known)
    contact = change.contact or (known.contact if known else None)
    normalised, dropped = normalise(contact, routing.default_phone_region) if contact else (None, ())
    dropped = unknown + dropped
    change = change.model_copy(update={"contact": normalised})
    if change.op == "delete":
        routed = route(normalised, routing, providers)
        targets = list(providers) if known is None else _union(known.routed_to, routed, providers)
        return TransformedChange(change=change, verdicts=[], targets=targets, dropped_fields=dropped), None
    assert normalised is not None  # an upsert always carries its row
    routed_to = list(known.routed_to) if known else []
    still_holding = [provider for provider in routed_to if provider in routing.sticky]
    result = TransformedChange(
        change=change,
        verdicts=apply_rules(normalised, routing),
        targets=_union(route(normalised, routing, providers), still_holding, providers),
        dropped_fields=dropped,
    )
    if result.stopped_by is None:
        routed_to = _union(routed_to, result.targets, providers)
    remember = KnownContact(contact=normalised, version=change.version, routed_to=routed_to,
                            source_subscribed=source_subscribed, unsubscribed_by=unsubscribed_by)
    return result, remember


def keep_unsubscribed(
    change: ContactChange, known: KnownContact | None
) -> tuple[ContactChange, str | None, bool | None]:
    """The change with a platform's unsubscribe kept; the platform that holds one; what the source says.

    An unsubscribe that came back from a platform (``origin`` not ``source``) holds until the
    source itself changes the subscription: a source change saying ``subscribed`` while the
    source's previous change said so too (or none was seen) only carries a stale copy, and is
    delivered unsubscribed. A source change from unsubscribed to subscribed is a real resubscribe
    and ends the hold, as does a platform's own subscribe.
    """
    held_by = known.unsubscribed_by if known else None
    source_said = known.source_subscribed if known else None
    contact = change.contact
    if contact is None or change.op == "delete":
        return change, held_by, source_said
    if change.origin != "source":
        return change, None if contact.subscribed else change.origin, source_said
    if held_by is not None and contact.subscribed and source_said is not False:
        kept = change.model_copy(update={"contact": contact.model_copy(update={"subscribed": False})})
        return kept, held_by, True
    return change, None, contact.subscribed


def _with_known_values(
    change: ContactChange, known: KnownContact | None
) -> tuple[Contact | None, tuple[DroppedField, ...]]:
    """The change's contact with the last known value of each field the CDC tool did not send (none
    known: the field stays empty, so no platform's value is touched, and is named as dropped)."""
    if change.contact is None:
        return (known.contact if known else None), ()
    missing = change.unavailable_fields
    if not missing:
        return change.contact, ()
    if known is None:
        reason = "not sent by the CDC tool (an unchanged TOASTed column) and no earlier value is known"
        return change.contact, tuple(DroppedField(field=field, reason=reason) for field in missing)
    return change.contact.model_copy(update={field: getattr(known.contact, field) for field in missing}), ()


def unrouted_reason(contact: Contact | None, routing: RoutingSettings, providers: tuple[str, ...]) -> str:
    """Why a change goes to no provider (its targets are empty)."""
    if not providers:
        return "no provider is enabled"
    kind = contact.contact_type if contact else None
    if kind is None:
        return "no type" + ("" if contact and contact.subscribed else ", not subscribed")
    if kind not in routing.by_contact_type:
        return f'no provider for type "{kind}"'
    return f'no enabled provider for type "{kind}"'


def _union(first: list[str], second: list[str], providers: tuple[str, ...]) -> list[str]:
    return [provider for provider in providers if provider in first or provider in second]


def normalise(contact: Contact, phone_region: str) -> tuple[Contact, tuple[DroppedField, ...]]:
    """Email lower-cased and trimmed, phone in E.164, names tidied; and the fields dropped (a phone
    that is not a possible number: ``phone_region`` is the region of numbers without a country code)."""
    phone, why_not = _e164(contact.phone, phone_region) if contact.phone and contact.phone.strip() else (None, "")
    dropped = (DroppedField(field="phone", reason=f"{why_not} (default region {phone_region})"),) if why_not else ()
    return contact.model_copy(
        update={
            "email": contact.email.strip().lower() if contact.email and contact.email.strip() else None,
            "phone": phone,
            "first_name": tidy_name(contact.first_name),
            "last_name": tidy_name(contact.last_name),
            "company": _blank_to_none(contact.company),
            "title": _blank_to_none(contact.title),
            "contact_type": (contact.contact_type or "").strip().lower() or None,
        }
    ), dropped


# Parsing is the dearest part of a change, and updates keep their phone. ~280 B an entry: 4,096 hold
# 1.1 MB where 16,384 held 4.6, which a large backlog fills with numbers it mostly never sees again.
@functools.lru_cache(maxsize=4_096)
def _e164(phone: str, region: str) -> tuple[str | None, str]:
    """``phone`` in E.164, or None and why it is not a phone number."""
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as exc:
        return None, _PARSE_ERRORS.get(exc.error_type, "not a phone number")
    if not phonenumbers.is_possible_number(parsed):
        return None, "not a possible number"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), ""


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
