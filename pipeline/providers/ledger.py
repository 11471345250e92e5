"""One result slot per input record: how an adapter splits a batch into calls and puts it back in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.errors import DeliveryError, PermanentError
from pipeline.providers.base import DeliveryResult
from schemas.dispatch import DispatchRecord

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Entry(Generic[P]):
    """One record of the batch with its payload validated into the provider's model."""

    index: int
    record: DispatchRecord
    payload: P

    def ok(self, provider_id: str | None, *, provider_ids: tuple[str, ...] | None = None) -> DeliveryResult:
        return DeliveryResult(self.record.record_id, provider_id=provider_id, provider_ids=provider_ids)

    def failed(self, error: DeliveryError) -> DeliveryResult:
        return DeliveryResult(self.record.record_id, error=error)


Call = Callable[[Sequence[Entry[P]]], Awaitable[list[DeliveryResult]]]


class Ledger:
    """Collects the results of the calls an adapter makes for one batch."""

    def __init__(self, batch: Sequence[DispatchRecord]) -> None:
        self._batch = batch
        self._results: dict[int, DeliveryResult] = {}

    def entries(self, op: Literal["upsert", "delete"], model: type[P]) -> list[Entry[P]]:
        """The records of ``op``; one whose payload does not validate gets a ``PermanentError`` now."""
        entries: list[Entry[P]] = []
        for index, record in enumerate(self._batch):
            if record.op != op:
                continue
            try:
                entries.append(Entry(index, record, model.model_validate(record.payload)))
            except ValidationError as exc:
                where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})
                message = f"{op} payload is not a valid {model.__name__} at {where}"
                error = PermanentError(message, code="invalid_payload")
                self._results[index] = DeliveryResult(record.record_id, error=error)
        return entries

    async def run(self, entries: Sequence[Entry[P]], call: Call[P]) -> None:
        """Make ``call`` for ``entries``; a failure of the whole call becomes every entry's result."""
        if not entries:
            return
        try:
            results = await call(entries)
        except DeliveryError as error:
            results = [entry.failed(error) for entry in entries]
        for entry, result in zip(entries, results, strict=True):
            self._results[entry.index] = result

    def results(self) -> list[DeliveryResult]:
        """One result per input record, in input order."""
        return [self._results[index] for index in range(len(self._batch))]
