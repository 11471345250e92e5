"""Building dead letters: the original key and value, byte-identical, with the story in headers."""

from __future__ import annotations

import time

from faust.types import EventT

from pipeline.kafka.producing import Outgoing
from schemas.dead_letter import DeadLetter
from schemas.headers import to_headers


def now_ms() -> int:
    return int(time.time() * 1000)


def dead_letter(
    dlq_topic: str,
    event: EventT,
    stage: str,
    error: BaseException,
    *,
    provider: str = "",
    attempts: int = 1,
    first_failure_ms: int | None = None,
) -> Outgoing:
    """The DLQ message for ``event``, which failed at ``stage`` with ``error``."""
    message = event.message
    failed_at = now_ms()
    letter = DeadLetter(
        stage=stage,
        error_class=type(error).__name__,
        error_message=str(error),
        original_topic=message.topic,
        original_partition=message.partition,
        original_offset=message.offset,
        first_failure_ms=first_failure_ms or failed_at,
        last_failure_ms=failed_at,
        attempts=attempts,
        provider=provider,
    )
    return Outgoing(dlq_topic, message.key, message.value, to_headers(letter))
