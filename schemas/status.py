"""The status of one record at each provider, as the record status table holds it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.contact import DroppedField
from schemas.dispatch import DeliveryState


class ProviderStatus(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    state: DeliveryState
    version: int
    attempts: int
    last_error: str | None = None
    provider_id: str | None = None
    at_ms: int
    dropped_fields: tuple[DroppedField, ...] = ()  # left out of the contact at this version


class RecordStatus(BaseModel):
    """Per provider, the newest thing that happened to the record there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: dict[str, ProviderStatus] = {}
