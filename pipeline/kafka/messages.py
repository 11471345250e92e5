"""A consumed message's value and headers, as the stages read them (Faust types both loosely)."""

from __future__ import annotations

from collections.abc import Mapping

from faust.types import EventT

from pipeline.errors import InvalidEventError


def value_of(event: EventT[bytes]) -> bytes:
    """The message's value; InvalidEventError for a tombstone where a stage expects a value."""
    value = event.message.value
    if value is None:
        raise InvalidEventError("the message has no value (a tombstone) where a value is expected")
    return value


def headers_of(event: EventT[bytes]) -> list[tuple[str, bytes]]:
    """The message's headers as (name, value) pairs, in order."""
    headers = event.message.headers
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)
