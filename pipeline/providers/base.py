"""The provider interface: a batch of dispatch records in, one result per record out, in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.errors import DeliveryError
from schemas.contact import ContactChange
from schemas.dispatch import DispatchRecord

Mapper = Callable[[ContactChange], DispatchRecord]
"""The pure mapping step of one provider: a change in, that provider's dispatch record out (no I/O).

Raises ``MappingError`` when the change cannot be expressed for the provider."""


RequestOf = Callable[[DispatchRecord], str]
"""Which of a provider's API calls carries a record: the dispatcher fills requests call by call, as
an adapter splits a batch into one request per call."""


def by_operation(record: DispatchRecord) -> str:
    """Upserts and deletes in calls of their own (every provider's calls differ at least so)."""
    return record.op


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of one record: the provider's id for it, or a classified error.

    ``provider_ids``, when the adapter knows them: every id the platform holds the record under
    after this call (() once deleted), kept in the version guard row so that a later delete needs
    no lookup. None: not known (the next delete looks the record up).
    """

    record_id: str
    provider_id: str | None = None
    error: DeliveryError | None = None
    provider_ids: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        """True when the provider holds the record as sent (or, for a delete, no longer holds it)."""
        return self.error is None


class Provider(Protocol):
    """One external platform. ``deliver`` never raises a delivery failure: it returns it per record.

    A failure of the whole call (timeout, connection error, 5xx, throttling, a 4xx for the whole
    batch) is the same error in every record's result; the dispatcher retries, splits or
    dead-letters. Adapters never retry on their own.
    """

    @property
    def name(self) -> str: ...

    async def deliver(self, batch: Sequence[DispatchRecord]) -> list[DeliveryResult]:
        """Send ``batch``; exactly one result per input record, in input order."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client."""
        ...
