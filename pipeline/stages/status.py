"""How outcomes change a record's status: each writer's rows, and the status they make together.

Every stage that records outcomes keeps its own status rows, one per record and provider (the key
says whose: ``status_key``), written in the batch that produced the outcome. One row has one
writer, so its changelog messages come in the order it was written, and a row recovered from the
changelog is the newest. A record's status is its rows merged (``merged_status``), by the same
rules that fold outcomes into one row (``apply_entry``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from schemas.dispatch import NO_PROVIDER, Outcome
from schemas.status import ProviderStatus, RecordStatus

Writer = Literal["transform", "route", "dispatch"]
"""The stages that record outcomes: transform (unrouted, skipped_by_rule), route (unmappable),
the provider's dispatcher (delivered, superseded, retrying, dead_lettered)."""
WRITERS: tuple[Writer, ...] = ("transform", "route", "dispatch")

# Between the parts of a row's key: a record id holds no control character (schemas.cdc), so a row
# key never equals a record id (the key of a row written before the rows were split per writer).
_SEPARATOR = "\x1f"


def status_key(record_id: str, provider: str, writer: Writer) -> bytes:
    """The key of ``writer``'s status row for ``record_id`` at ``provider``."""
    return f"{record_id}{_SEPARATOR}{provider}{_SEPARATOR}{writer}".encode()


def record_row_keys(record_id: str, providers: Iterable[str]) -> list[bytes]:
    """Every key a status row of ``record_id`` may have: each writer's at each of ``providers`` (and at
    ``none``), then the record id itself (a row written before the rows were split per writer)."""
    targets = (NO_PROVIDER, *providers)
    keys = [status_key(record_id, provider, writer) for writer in WRITERS for provider in targets]
    return [*keys, record_id.encode()]


def entry_of(outcome: Outcome) -> ProviderStatus:
    return ProviderStatus(
        state=outcome.state,
        version=outcome.version,
        attempts=outcome.attempts,
        last_error=outcome.error,
        provider_id=outcome.provider_id,
        at_ms=outcome.at_ms,
        dropped_fields=outcome.dropped_fields,
    )


def kept_entry(current: ProviderStatus | None, entry: ProviderStatus) -> ProviderStatus:
    """What one provider's place shows after ``entry``: ``current`` itself if ``entry`` is for an
    older version, or a ``superseded`` for the version shown (a redelivery of what the provider
    already holds); else ``entry``, keeping the provider id known before when it brings none."""
    if current is None:
        return entry
    if entry.version < current.version or (entry.version == current.version and entry.state == "superseded"):
        return current
    if entry.provider_id is None and current.provider_id is not None:
        return entry.model_copy(update={"provider_id": current.provider_id})
    return entry


def apply_entry(status: RecordStatus, provider: str, entry: ProviderStatus) -> RecordStatus:
    """The status after ``entry`` at ``provider`` (``kept_entry``). An ``unrouted`` entry (provider
    ``none``) goes once a version as new reaches a provider."""
    current = status.providers.get(provider)
    kept = kept_entry(current, entry)
    if kept is current:
        return status
    unrouted = status.providers.get(NO_PROVIDER)
    providers = {
        name: row for name, row in status.providers.items()
        if not (name == NO_PROVIDER and unrouted is not None and entry.version >= unrouted.version)
    }
    return RecordStatus(providers={**providers, provider: kept})


def rows_after(
    outcomes: Iterable[Outcome], stored: Callable[[str, str], ProviderStatus | None]
) -> dict[tuple[str, str], ProviderStatus]:
    """One writer's rows, by (record id, provider), that ``outcomes`` (in the order recorded) change,
    each folded from its ``stored`` entry: one entry per row, so a batch writes each row once (and
    none it leaves as it was)."""
    rows: dict[tuple[str, str], ProviderStatus | None] = {}
    changed: dict[tuple[str, str], ProviderStatus] = {}
    for outcome in outcomes:
        place = (outcome.record_id, outcome.provider)
        current = rows[place] if place in rows else stored(*place)
        rows[place] = kept = kept_entry(current, entry_of(outcome))
        if kept is not current:
            changed[place] = kept
    return changed


def merged_status(rows: Iterable[tuple[bytes, bytes]]) -> RecordStatus | None:
    """A record's status from its stored rows, (key, value) (None: it has none): every entry applied
    in the order they happened, so the status is what one row fed every outcome would show. The
    record's old row, under its id, counts with its entries."""
    entries: list[tuple[str, ProviderStatus]] = []
    found = False
    for key, value in rows:
        found = True
        parts = key.decode().split(_SEPARATOR)
        if len(parts) == 1:
            entries += RecordStatus.model_validate_json(value).providers.items()
        else:
            entries.append((parts[1], ProviderStatus.model_validate_json(value)))
    if not found:
        return None
    status = RecordStatus()
    for provider, entry in sorted(entries, key=lambda item: item[1].at_ms):
        status = apply_entry(status, provider, entry)
    return RecordStatus(providers=dict(sorted(status.providers.items())))  # the same order whoever wrote first
