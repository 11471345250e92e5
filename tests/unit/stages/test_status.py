"""How outcomes build a record's status."""

from __future__ import annotations

from pipeline.cli.status import status_lines
from pipeline.stages.status import apply_outcome, statuses_after
from schemas.contact import DroppedField
from schemas.dispatch import Outcome
from schemas.status import RecordStatus


def outcome(version: int, state: str, provider: str = "hubspot", **extra: object) -> Outcome:
    return Outcome(record_id="1", provider=provider, version=version, state=state, at_ms=version,
                   source_ts_ms=0, **extra)


def test_newer_outcomes_replace_older_and_older_are_ignored() -> None:
    """The status shows the newest version's outcome per provider, whatever the arrival order."""
    status = RecordStatus()
    for item in [outcome(1, "retrying"), outcome(2, "delivered", provider_id="h-9"), outcome(1, "delivered")]:
        status = apply_outcome(status, item)
    entry = status.providers["hubspot"]
    assert (entry.version, entry.state, entry.provider_id) == (2, "delivered", "h-9")


def test_superseded_redelivery_does_not_hide_delivered() -> None:
    """A redelivery skipped by the guard leaves 'delivered' in place; providers are independent."""
    status = apply_outcome(RecordStatus(), outcome(3, "delivered"))
    status = apply_outcome(status, outcome(3, "superseded"))
    status = apply_outcome(status, outcome(1, "skipped_by_rule", provider="mailchimp"))
    assert status.providers["hubspot"].state == "delivered"
    assert status.providers["mailchimp"].state == "skipped_by_rule"


def test_a_batch_of_outcomes_gives_one_status_per_record() -> None:
    """Outcomes are folded per record in arrival order, each from its stored status, read once."""
    reads: list[str] = []

    def stored(record_id: str) -> RecordStatus:
        reads.append(record_id)
        return apply_outcome(RecordStatus(), outcome(5, "delivered")) if record_id == "1" else RecordStatus()

    other = Outcome(record_id="2", provider="hubspot", version=1, state="delivered", at_ms=1, source_ts_ms=0)
    statuses = statuses_after([outcome(4, "delivered"), other, outcome(6, "retrying"), outcome(6, "delivered")], stored)
    assert reads == ["1", "2"]
    assert (statuses["1"].providers["hubspot"].version, statuses["1"].providers["hubspot"].state) == (6, "delivered")
    assert statuses["2"].providers["hubspot"].version == 1


def test_a_dropped_field_reaches_the_status_and_the_status_command() -> None:
    """What the transform stage dropped (an invalid phone) is kept on the record's status per provider,
    printed by `contactsync status` with its reason; a status row without it (written before) reads as none."""
    phone = DroppedField(field="phone", reason="not a phone number (default region US)")
    status = apply_outcome(RecordStatus(), outcome(2, "delivered", dropped_fields=(phone,)))
    status = apply_outcome(status, outcome(2, "skipped_by_rule", provider="mailchimp", dropped_fields=(phone,)))
    assert status.providers["hubspot"].dropped_fields == (phone,)

    lines = status_lines("7", status)
    assert [line.split()[-2] for line in lines[2:4]] == ["phone", "phone"]  # the DROPPED column
    assert lines[4:] == ["phone dropped from the contact: not a phone number (default region US)"]
    old_row = '{"providers": {"hubspot": {"state": "delivered", "version": 1, "attempts": 1, "at_ms": 5}}}'
    assert RecordStatus.model_validate_json(old_row).providers["hubspot"].dropped_fields == ()


def test_an_unrouted_row_shows_its_reason_until_a_newer_version_reaches_a_provider() -> None:
    """`contactsync status` names why a change went nowhere; a later delivery replaces that row."""
    unrouted = outcome(4, "unrouted", provider="none", error='no provider for type "partner"')
    status = apply_outcome(RecordStatus(), unrouted)
    assert any('no provider for type "partner"' in line for line in status_lines("1", status))
    status = apply_outcome(status, outcome(5, "delivered"))
    assert set(status.providers) == {"hubspot"}
