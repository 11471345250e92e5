"""Building dead letters: the original key and value, byte-identical, with the story in headers.

A letter the producer could not send (the original is close to the producer's limit, and the headers
add to it) becomes a reference: the original's size and sha256 in headers and its first
``EXCERPT_BYTES`` as the value, so that nothing is ever dropped for being too large. The original
stays at ``original_topic`` / ``original_partition`` / ``original_offset`` while retention keeps it.
"""

from __future__ import annotations

import hashlib
import time

from faust.types import EventT

from pipeline.kafka.producing import Outgoing, message_size, request_limit
from schemas.dead_letter import DeadLetter
from schemas.headers import to_headers

EXCERPT_BYTES = 1024
ERROR_TEXT_MAX = 1000  # characters of an error message kept in a header and a log line


def now_ms() -> int:
    return int(time.time() * 1000)


def error_text(error: BaseException) -> str:
    """The error's message, cut to ``ERROR_TEXT_MAX`` characters and safe to encode as UTF-8 (an
    exception may quote a lone surrogate from its input)."""
    text = str(error)
    if len(text) > ERROR_TEXT_MAX:
        text = text[: ERROR_TEXT_MAX - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def dead_letter(
    dlq_topic: str,
    event: EventT[bytes],
    stage: str,
    error: BaseException,
    *,
    provider: str = "",
    attempts: int = 1,
    first_failure_ms: int | None = None,
    error_class: str = "",
) -> Outgoing:
    """The DLQ message for ``event``, which failed at ``stage`` with ``error`` (named ``error_class``,
    by default its type): whole if the producer can send it, else a reference."""
    message = event.message
    failed_at = now_ms()
    story = DeadLetter(
        stage=stage,
        error_class=error_class or type(error).__name__,
        error_message=error_text(error),
        original_topic=message.topic,
        original_partition=message.partition,
        original_offset=message.offset,
        first_failure_ms=first_failure_ms or failed_at,
        last_failure_ms=failed_at,
        attempts=attempts,
        provider=provider,
    )
    return letter_message(dlq_topic, message.key, message.value, story, request_limit(event.app))


def letter_message(
    dlq_topic: str, key: bytes | None, value: bytes | None, story: DeadLetter, limit: int
) -> Outgoing:
    """The letter itself, or, when it would be larger than ``limit`` bytes, a reference to the original."""
    whole = Outgoing(dlq_topic, key, value, to_headers(story))
    if message_size(whole) <= limit:
        return whole
    original = value or b""
    reference = story.model_copy(
        update={"original_size": len(original), "original_sha256": hashlib.sha256(original).hexdigest()}
    )
    excerpt = None if value is None else value[:EXCERPT_BYTES]
    return Outgoing(dlq_topic, None if key is None else key[:EXCERPT_BYTES], excerpt, to_headers(reference))
