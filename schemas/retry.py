"""Where a delivery stands in the retry chain (carried as ``contactsync.*`` headers)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RetryState(BaseModel):
    """``attempts`` failed deliveries so far; the next is not due before ``not_before_ms``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = 0
    not_before_ms: int = 0
    first_failure_ms: int = 0
    last_failure_ms: int = 0
    last_error: str = ""
