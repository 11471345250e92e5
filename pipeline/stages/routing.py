"""Mapping a transformed change for one provider."""

from __future__ import annotations

from pipeline.errors import PermanentError
from pipeline.providers.base import Mapper
from schemas.contact import TransformedChange
from schemas.dispatch import DispatchRecord


def with_previous_key(mapper: Mapper, transformed: TransformedChange) -> DispatchRecord:
    """The mapped record, with the key the provider knew it by when this change moved it."""
    record = mapper(transformed.change)
    if transformed.previous is None or transformed.change.op == "delete":
        return record
    try:
        before = mapper(transformed.change.model_copy(update={"contact": transformed.previous}))
    except PermanentError:
        return record  # the previous contact could not be mapped there, so it is not there
    return record if before.key == record.key else record.model_copy(update={"previous_key": before.key})
