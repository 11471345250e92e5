"""Kafka headers as a flat model: one header per field, named ``contactsync.<field>``.

Metadata travels in headers so that a dead-lettered or retried message keeps its value byte-identical.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeVar, cast

from pydantic import BaseModel

HEADER_PREFIX = "contactsync."

M = TypeVar("M", bound=BaseModel)


def to_headers(model: BaseModel) -> list[tuple[str, bytes]]:
    return [
        (HEADER_PREFIX + name, str(value).encode())
        for name, value in model.model_dump().items()
        if value is not None
    ]


def from_headers(cls: type[M], headers: Sequence[tuple[str, bytes]] | None) -> M:
    """Read ``cls`` back from headers (others are ignored); missing fields take their defaults."""
    fields = {
        name.removeprefix(HEADER_PREFIX): value.decode()
        for name, value in headers or ()
        if name.startswith(HEADER_PREFIX)
    }
    if not fields:  # most messages carry none (a first delivery has no retry state)
        return cast(M, _defaults(cls))  # functools.cache loses the type
    return cls.model_validate({k: v for k, v in fields.items() if k in cls.model_fields})


@functools.cache
def _defaults(cls: type[BaseModel]) -> BaseModel:
    """``cls`` with every field at its default (a ValidationError if some field has none): one instance
    per class, shared, as our models are frozen."""
    return cls.model_validate({})
