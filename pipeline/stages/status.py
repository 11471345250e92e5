"""How outcomes change a record's status."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from schemas.dispatch import NO_PROVIDER, Outcome
from schemas.status import ProviderStatus, RecordStatus


def apply_outcome(status: RecordStatus, outcome: Outcome) -> RecordStatus:
    """The status after ``outcome``.

    An outcome for an older version than the one shown is ignored, and so is a ``superseded`` for the
    version shown (a redelivery of what the provider already holds). An ``unrouted`` row (provider
    ``none``) goes once a version as new reaches a provider.
    """
    current = status.providers.get(outcome.provider)
    if current is not None and (
        outcome.version < current.version
        or (outcome.version == current.version and outcome.state == "superseded")
    ):
        return status
    entry = ProviderStatus(
        state=outcome.state,
        version=outcome.version,
        attempts=outcome.attempts,
        last_error=outcome.error,
        provider_id=outcome.provider_id or (current.provider_id if current else None),
        at_ms=outcome.at_ms,
        dropped_fields=outcome.dropped_fields,
    )
    unrouted = status.providers.get(NO_PROVIDER)
    providers = {
        name: row for name, row in status.providers.items()
        if not (name == NO_PROVIDER and unrouted is not None and outcome.version >= unrouted.version)
    }
    return RecordStatus(providers={**providers, outcome.provider: entry})


def statuses_after(
    outcomes: Iterable[Outcome], stored: Callable[[str], RecordStatus]
) -> dict[str, RecordStatus]:
    """Each record's status after ``outcomes`` (in arrival order), starting from ``stored``: one
    entry per record, so a batch writes each record's row once."""
    statuses: dict[str, RecordStatus] = {}
    for outcome in outcomes:
        record_id = outcome.record_id
        status = statuses[record_id] if record_id in statuses else stored(record_id)
        statuses[record_id] = apply_outcome(status, outcome)
    return statuses
