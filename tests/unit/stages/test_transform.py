"""Normalising, rules and routing."""

from __future__ import annotations

from pipeline.settings import RoutingSettings
from pipeline.stages.transform import normalise, tidy_name, transform
from schemas.contact import Contact, ContactChange, DroppedField, KnownContact

PROVIDERS = ("hubspot", "salesforce", "mailchimp")
ROUTING = RoutingSettings()


def transform_(*args: object):  # the change part of transform's answer
    return transform(*args)[0]  # type: ignore[arg-type]


def change(op: str = "upsert", contact: Contact | None = None) -> ContactChange:
    return ContactChange(record_id="1", op=op, version=1, source_ts_ms=0, captured_at_ms=0, contact=contact)


def test_normalise_email_phone_and_names() -> None:
    """Email is trimmed and lower-cased, phone becomes E.164, shouting names are tidied."""
    contact, dropped = normalise(
        Contact(id="1", email="  Ann@Example.COM ", phone="(415) 555-2671", first_name="  ANN ", last_name="mcdonald"),
        "US",
    )
    assert (contact.email, contact.phone, contact.first_name, contact.last_name) == (
        "ann@example.com", "+14155552671", "Ann", "Mcdonald",
    )
    assert dropped == ()


def phone_of(phone: str, region: str = "US") -> tuple[str | None, tuple[DroppedField, ...]]:
    contact, dropped = normalise(Contact(id="1", phone=phone), region)
    return contact.phone, dropped


def test_unparseable_phone_is_dropped_with_a_reason_and_mixed_case_names_kept() -> None:
    """A phone that is not a number is dropped rather than sent, and the drop says why without
    quoting the number; McDonald stays McDonald."""
    assert phone_of("call me") == (None, (DroppedField(field="phone", reason="not a phone number (default region US)"),))
    assert phone_of("+1 415 555 26712345") == (
        None, (DroppedField(field="phone", reason="not a possible number (default region US)"),)
    )
    assert phone_of("+44 20 7946 0958") == ("+442079460958", ())
    assert phone_of("   ") == (None, ())  # blank is no phone, not a dropped one
    assert tidy_name("McDonald") == "McDonald"


def test_a_region_phonenumbers_does_not_know_drops_national_numbers_visibly() -> None:
    """With default region ZZ every national-format number is dropped, and each drop names the region."""
    assert phone_of("(415) 555-2671", "ZZ") == (
        None, (DroppedField(field="phone", reason="no valid country code (default region ZZ)"),)
    )


def test_the_transformed_change_carries_what_was_dropped() -> None:
    """An upsert whose phone was dropped is still routed, with the drop on the change; a delete too."""
    contact = Contact(id="1", email="a@b.co", phone="555", contact_type="customer")
    upsert = transform_(change(contact=contact), None, ROUTING, PROVIDERS)
    deleted = transform_(change("delete", contact=contact), None, ROUTING, PROVIDERS)
    assert upsert.targets == ["hubspot"] and upsert.change.contact is not None and upsert.change.contact.phone is None
    assert [d.field for d in upsert.dropped_fields] == [d.field for d in deleted.dropped_fields] == ["phone"]
    assert "555" not in upsert.model_dump_json()  # the number is gone, and no reason quotes it
    clean = transform_(change(contact=contact.model_copy(update={"phone": None})), None, ROUTING, PROVIDERS)
    assert clean.dropped_fields == ()


def test_routing_by_type_and_subscription() -> None:
    """Leads go to Salesforce, customers to HubSpot, subscribed contacts also to Mailchimp."""
    lead = transform_(change(contact=Contact(id="1", email="a@b.co", contact_type="Lead", subscribed=True)), None, ROUTING, PROVIDERS)
    customer = transform_(change(contact=Contact(id="1", email="a@b.co", contact_type="customer")), None, ROUTING, PROVIDERS)
    assert lead.targets == ["salesforce", "mailchimp"]
    assert customer.targets == ["hubspot"]


def test_rules_stop_missing_email_and_do_not_sync() -> None:
    """A contact without email, or flagged do_not_sync, is stopped with the rule's reason."""
    no_email = transform_(change(contact=Contact(id="1", contact_type="lead")), None, ROUTING, PROVIDERS)
    flagged = transform_(change(contact=Contact(id="1", email="a@b.co", contact_type="lead", do_not_sync=True)), None, ROUTING, PROVIDERS)
    assert no_email.stopped_by is not None and no_email.stopped_by.rule == "required:email"
    assert flagged.stopped_by is not None and flagged.stopped_by.rule == "do_not_sync"
    fine = transform_(change(contact=Contact(id="1", email="a@b.co", contact_type="lead")), None, ROUTING, PROVIDERS)
    assert fine.stopped_by is None


def test_delete_is_routed_by_last_known_contact_or_everywhere() -> None:
    """A key-only delete goes where the last known contact went, or to every provider if unknown."""
    known = KnownContact(contact=Contact(id="1", email="A@b.co", contact_type="customer", subscribed=True))
    routed = transform_(change("delete"), known, ROUTING, PROVIDERS)
    assert routed.targets == ["hubspot", "mailchimp"]
    assert routed.change.contact is not None and routed.change.contact.email == "a@b.co"
    assert transform_(change("delete"), None, ROUTING, PROVIDERS).targets == list(PROVIDERS)


def test_disabled_provider_is_never_a_target() -> None:
    """Routing only names providers that are enabled."""
    lead = transform_(change(contact=Contact(id="1", email="a@b.co", contact_type="lead", subscribed=True)), None, ROUTING, ("mailchimp",))
    assert lead.targets == ["mailchimp"]


def test_delete_reaches_every_provider_the_record_was_ever_routed_to() -> None:
    """A lead that became a customer is deleted at Salesforce too, not only at HubSpot."""
    as_lead = change(contact=Contact(id="1", email="a@b.co", contact_type="lead"))
    _, known = transform(as_lead, None, ROUTING, PROVIDERS)
    as_customer = change(contact=Contact(id="1", email="a@b.co", contact_type="customer"))
    result, known = transform(as_customer, known, ROUTING, PROVIDERS)
    assert result.targets == ["hubspot"] and known is not None
    assert known.routed_to == ["hubspot", "salesforce"]
    deleted, forgotten = transform(change("delete"), known, ROUTING, PROVIDERS)
    assert deleted.targets == ["hubspot", "salesforce"] and forgotten is None


def test_a_stopped_change_does_not_count_as_routed() -> None:
    """A contact that was only ever do_not_sync was never sent anywhere."""
    flagged = change(contact=Contact(id="1", email="a@b.co", contact_type="lead", do_not_sync=True))
    _, known = transform(flagged, None, ROUTING, PROVIDERS)
    assert known is not None and known.routed_to == []


def test_unsubscribe_still_reaches_mailchimp() -> None:
    """A subscribed contact that unsubscribes keeps going to Mailchimp (sticky), so the unsubscribe lands."""
    subscribed = change(contact=Contact(id="1", email="a@b.co", contact_type="customer", subscribed=True))
    _, known = transform(subscribed, None, ROUTING, PROVIDERS)
    unsubscribed = change(contact=Contact(id="1", email="new@b.co", contact_type="customer", subscribed=False))
    result, _ = transform(unsubscribed, known, ROUTING, PROVIDERS)
    assert result.targets == ["hubspot", "mailchimp"]


def _subscription_after(*changes: tuple[str, bool]) -> list[bool]:
    """What the transform delivers for each (origin, subscribed) change of one record, in order."""
    known, delivered = None, []
    for version, (origin, subscribed) in enumerate(changes, start=1):
        contact = Contact(id="c-1", email="ann@x.com", first_name=f"Ann{version}", subscribed=subscribed)
        change = ContactChange(record_id="c-1", op="upsert", version=version, source_ts_ms=version,
                               captured_at_ms=version, contact=contact, origin=origin)
        result, known = transform(change, known, RoutingSettings(), ("hubspot", "mailchimp"))
        assert result.change.contact is not None
        delivered.append(result.change.contact.subscribed)
    return delivered


def test_a_platform_unsubscribe_survives_source_changes_that_leave_the_subscription_alone() -> None:
    """After an unsubscribe came back from Mailchimp, a source update of the name still saying
    subscribed (a stale copy) is delivered unsubscribed; the source's own change to unsubscribed and
    then back to subscribed is a real resubscribe; a platform subscribe ends the hold too."""
    assert _subscription_after(("source", True), ("mailchimp", False), ("source", True), ("source", True)) == [
        True, False, False, False]
    assert _subscription_after(("source", True), ("mailchimp", False), ("source", False), ("source", True)) == [
        True, False, False, True]
    assert _subscription_after(("source", True), ("mailchimp", False), ("mailchimp", True), ("source", True)) == [
        True, False, True, True]
    assert _subscription_after(("mailchimp", False), ("source", True)) == [False, False]


def test_a_change_routed_nowhere_has_a_reason() -> None:
    """An unknown type, no type, or a type whose providers are all disabled: each says so."""
    from pipeline.stages.transform import unrouted_reason

    partner = Contact(id="1", email="a@b.co", contact_type="partner")
    assert transform_(change(contact=partner), None, ROUTING, PROVIDERS).targets == []
    assert unrouted_reason(partner, ROUTING, PROVIDERS) == 'no provider for type "partner"'
    assert unrouted_reason(Contact(id="1"), ROUTING, PROVIDERS) == "no type, not subscribed"
    assert unrouted_reason(Contact(id="1", contact_type="lead"), ROUTING, ("hubspot",)) == (
        'no enabled provider for type "lead"'
    )


def _versioned(version: int, op: str = "upsert", **fields: object) -> ContactChange:
    contact = Contact(id="1", email="a@b.co", contact_type="customer", **fields) if op == "upsert" else None  # type: ignore[arg-type]
    return ContactChange(record_id="1", op=op, version=version, source_ts_ms=version, captured_at_ms=version,  # type: ignore[arg-type]
                         contact=contact, unavailable_fields=("title",) if "title" not in fields and op == "upsert" else ())


def test_an_older_change_read_again_leaves_the_newer_last_known_row() -> None:
    """A replay or a re-read brings version 1 (and an older delete) after version 2: the row stays
    version 2's, so version 3's unsent (TOASTed) title comes from version 2, not from version 1."""
    _, known = transform(_versioned(1, title="Old"), None, ROUTING, PROVIDERS)
    _, known = transform(_versioned(2, title="New"), known, ROUTING, PROVIDERS)
    for older in (_versioned(1, title="Old"), _versioned(1, op="delete")):
        result, kept = transform(older, known, ROUTING, PROVIDERS)
        assert kept is known and result.targets == ["hubspot"]
    newest, _ = transform(_versioned(3), known, ROUTING, PROVIDERS)
    assert newest.change.contact is not None and newest.change.contact.title == "New"
