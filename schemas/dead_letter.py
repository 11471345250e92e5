"""A dead letter: the original key and value stay byte-identical; what happened travels in headers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class DeadLetter(BaseModel):
    """Why and where a message died (carried as ``contactsync.*`` headers, see schemas.headers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    error_class: str
    error_message: str
    original_topic: str
    original_partition: int
    original_offset: int
    first_failure_ms: int
    last_failure_ms: int
    attempts: int = 1
    provider: str = ""
    # Set on a reference letter: the original was too large to dead-letter whole, so the letter's value
    # holds only its first bytes (and its key at most as many); these say what the original was.
    original_size: int | None = None
    original_sha256: str | None = None

    @property
    def is_reference(self) -> bool:
        return self.original_size is not None


class HandledLetter(BaseModel):
    """A dead letter that needs nothing more (``contacts.dlq.handled``, keyed ``<partition>:<offset>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["replayed", "purged"]
    at_ms: int
    replayed_to: str = ""


class Replayed(BaseModel):
    """On a replayed message (a ``contactsync.replayed_from`` header): the dead letter it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    replayed_from: str  # <dlq topic>:<partition>:<offset>
