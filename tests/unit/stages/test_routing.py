"""Mapping for one provider, with the key the provider knew the record by before."""

from __future__ import annotations

from pipeline.providers import build_mappers
from pipeline.settings import ProvidersSettings
from pipeline.stages.routing import with_previous_key
from schemas.contact import Contact, ContactChange, TransformedChange

MAPPERS = build_mappers(ProvidersSettings())


def transformed(email: str, previous_email: str | None) -> TransformedChange:
    contact = Contact(id="7", email=email, last_name="Doe", contact_type="lead", subscribed=True)
    previous = contact.model_copy(update={"email": previous_email}) if previous_email else None
    change = ContactChange(record_id="7", op="upsert", version=2, source_ts_ms=0, captured_at_ms=0, contact=contact)
    return TransformedChange(change=change, verdicts=[], targets=["mailchimp"], previous=previous)


def test_new_email_carries_the_old_mailchimp_key() -> None:
    """When the email changes, Mailchimp's record names the member it was before."""
    record = with_previous_key(MAPPERS["mailchimp"], transformed("new@x.io", "old@x.io"))
    old = with_previous_key(MAPPERS["mailchimp"], transformed("old@x.io", None))
    assert record.previous_key == old.key and record.key != old.key


def test_unchanged_key_has_no_previous_key() -> None:
    """Salesforce keys records by id, so a new email is an ordinary update there."""
    assert with_previous_key(MAPPERS["salesforce"], transformed("new@x.io", "old@x.io")).previous_key is None
    assert with_previous_key(MAPPERS["mailchimp"], transformed("same@x.io", "same@x.io")).previous_key is None
