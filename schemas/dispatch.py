"""What the route stage sends a provider's dispatcher, and what a delivery comes to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DeliveryState = Literal[
    "queued", "delivered", "skipped_by_rule", "retrying", "superseded", "dead_lettered"
]
TERMINAL_STATES: frozenset[str] = frozenset(
    {"delivered", "skipped_by_rule", "superseded", "dead_lettered"}
)


class DispatchRecord(BaseModel):
    """One record for one provider (``contacts.dispatch.<provider>``).

    ``payload`` is the provider's own body for this record (validated by the provider's payload
    model in ``schemas.providers``); ``key`` is the provider's stable upsert key for the record.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    provider: str
    op: Literal["upsert", "delete"]
    version: int
    source_ts_ms: int
    captured_at_ms: int
    key: str
    payload: dict[str, Any]
    previous_key: str | None = None  # set by the dispatcher: the key the provider holds it under now


class Delivered(BaseModel):
    """A row of a provider's version guard: the newest version it holds, under which key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    key: str


class Outcome(BaseModel):
    """One delivery result (``contacts.outcomes``): the audit trail behind status and metrics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    provider: str
    version: int
    state: DeliveryState
    at_ms: int
    source_ts_ms: int
    attempts: int = 1
    provider_id: str | None = None
    error: str | None = None
