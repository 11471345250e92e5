"""How outcomes build a record's status."""

from __future__ import annotations

from pipeline.stages.status import apply_outcome
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
