"""What every provider's mapping shares: loading its YAML file and applying a field map.

A field map is data (``pipeline/mappings/<provider>.yaml``): canonical ``Contact`` field name to the
provider's field name. A provider's mapper subclasses :class:`ChangeMapper` and writes two small
methods, ``upsert`` and ``delete``, that return the record's key and its payload model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import resources
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.errors import ConfigError, MappingError
from schemas.contact import Contact, ContactChange, ContactField
from schemas.dispatch import DispatchRecord

M = TypeVar("M", bound="MappingFile")


FieldMap = dict[ContactField, str]
"""Canonical ``Contact`` field name -> the provider's field name."""


class MappingFile(BaseModel):
    """Base of each provider's mapping file model: a typo in the file fails at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def load_mapping(provider: str, model: type[M]) -> M:
    """Read ``pipeline/mappings/<provider>.yaml`` into ``model``; a bad file is a ``ConfigError``."""
    name = f"{provider}.yaml"
    try:
        text = resources.files("pipeline").joinpath("mappings", name).read_text(encoding="utf-8")
        return model.model_validate(yaml.safe_load(text))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"pipeline/mappings/{name} is not a valid mapping: {exc}") from exc


def apply_fields(contact: Contact, fields: FieldMap) -> dict[str, str]:
    """The provider's fields that have a value, as text (booleans as ``true``/``false``)."""
    values = contact.model_dump()
    return {
        target: _text(values[source])
        for source, target in fields.items()
        if values[source] is not None and values[source] != ""
    }


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ChangeMapper(ABC):
    """Maps a ``ContactChange`` to one provider's ``DispatchRecord``; pure, no I/O."""

    provider: str

    def __call__(self, change: ContactChange) -> DispatchRecord:
        if change.op == "delete":
            key, payload = self.delete(change)
        elif change.contact is None:
            raise MappingError(f"{self.provider}: an upsert without a contact", code="no_contact")
        else:
            key, payload = self.upsert(change, change.contact)
        return DispatchRecord(
            record_id=change.record_id,
            provider=self.provider,
            op=change.op,
            version=change.version,
            source_ts_ms=change.source_ts_ms,
            captured_at_ms=change.captured_at_ms,
            key=key,
            payload=payload.model_dump(mode="json"),
            replaces=change.replaces,
            created=change.created,
        )

    @abstractmethod
    def upsert(self, change: ContactChange, contact: Contact) -> tuple[str, BaseModel]:
        """The provider's key and payload that write ``contact``."""

    @abstractmethod
    def delete(self, change: ContactChange) -> tuple[str, BaseModel]:
        """The provider's key and payload that delete the record (``change.contact`` may be None)."""
