"""The exception tree. Agents branch on the first level; nothing else escapes a stage.

    ContactSyncError
    ├── ConfigError               bad settings, topics.yaml or CLI input: one line for the user
    ├── WorkerFaultError          the worker itself failed (its table store): the stage stops
    ├── DeliveryError             one record (or one call) failed at a provider
    │   ├── RetryableError        try again later: timeouts, connection errors, 5xx, 408
    │   │   └── ThrottledError    the provider asked us to slow down; its lane pauses for retry_after
    │   └── PermanentError        retrying cannot help: validation 4xx, unparseable answer
    │       └── MappingError      a change cannot be expressed in a provider's payload (no email, ...)
    └── InvalidEventError         an input event that cannot be decoded or validated (dead-lettered)
        └── OutputTooLargeError   an event whose output is larger than the producer sends (dead-lettered)

Provider adapters convert httpx exceptions and HTTP answers into these at their boundary
(``raise RetryableError(...) from exc``); httpx exceptions never leave ``pipeline/providers/``.
"""

from __future__ import annotations

from pydantic import ValidationError


class ContactSyncError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ContactSyncError):
    """Settings, topics.yaml or a CLI argument is wrong; the message says what and how to fix it."""


class InvalidEventError(ContactSyncError):
    """An event that cannot be decoded or fails validation; it goes to the dead-letter topic."""


class OutputTooLargeError(InvalidEventError):
    """An event whose output message would be larger than the producer may send (max_request_size)."""


class WorkerFaultError(ContactSyncError):
    """The worker itself failed while handling an event (its table store): not the event's fault, so
    the stage stops without committing instead of dead-lettering the event (see pipeline.kafka.stage_loop)."""


class DeliveryError(ContactSyncError):
    """A delivery to a provider failed."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RetryableError(DeliveryError):
    """Worth trying again after ``retry_after`` seconds (0: at the next retry tier's delay)."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str = "", retry_after: float = 0.0
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class ThrottledError(RetryableError):
    """The provider's rate limit answered; the whole provider lane waits ``retry_after`` seconds."""


class PermanentError(DeliveryError):
    """Retrying cannot succeed; the record goes straight to the dead-letter topic."""


class MappingError(PermanentError):
    """A change cannot be mapped to a provider's payload (a required value is missing)."""


def invalid_event(exc: ValidationError, within: str = "") -> InvalidEventError:
    """An InvalidEventError naming the first failing field (inside ``within``, such as ``after``),
    without echoing input values (PII)."""
    first = exc.errors(include_input=False)[0]
    where = ".".join([*([within] if within else []), *(str(part) for part in first["loc"])]) or "event"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidEventError(f"invalid event: {where}: {first['msg']}{more}")
