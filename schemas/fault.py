"""A record of the worker stops one message was part of (``contacts.faults``, see pipeline.kafka.worker_faults)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WorkerStops(BaseModel):
    """How many times a worker stopped while handling the message, and why it stopped the last time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stops: int
    stage: str
    error_class: str
    error: str
    at_ms: int
