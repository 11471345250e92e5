"""Each platform's field names read back into canonical contact fields, from the same mapping files
the adapters write with (``pipeline/mappings/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from schemas.inbound import FieldValue


@dataclass(frozen=True)
class PlatformFields:
    """How one platform (one Salesforce object) names our fields, our id and our version."""

    by_platform_name: dict[str, str]  # platform field -> canonical Contact field
    record_id: str
    version: str
    placeholders: dict[str, str]  # platform field -> what we write when we have no value

    def read(self, values: dict[str, Any]) -> dict[str, FieldValue]:
        """The canonical fields among ``values``; blanks and our placeholders read as None."""
        found: dict[str, FieldValue] = {}
        for name, value in values.items():
            field = self.by_platform_name.get(name)
            if field is None:
                continue
            text = None if value is None else str(value).strip()
            found[field] = None if not text or self.placeholders.get(name) == text else text
        return found


def _mapping(provider: str) -> dict[str, Any]:
    text = resources.files("pipeline").joinpath("mappings", f"{provider}.yaml").read_text(encoding="utf-8")
    mapping: dict[str, Any] = yaml.safe_load(text)
    return mapping


@cache
def hubspot_fields() -> PlatformFields:
    mapping = _mapping("hubspot")
    names = {platform: field for field, platform in mapping["properties"].items()}
    return PlatformFields(names, mapping["record_id"], mapping["version"], {})


@cache
def mailchimp_fields() -> PlatformFields:
    mapping = _mapping("mailchimp")
    names = {platform: field for field, platform in mapping["merge_fields"].items()}
    names["EMAIL"] = mapping["email_address"]
    return PlatformFields(names, mapping["record_id"], mapping["version"], {})


@cache
def salesforce_fields(sobject: str, external_id_field: str) -> PlatformFields | None:
    """None when contacts are never written as ``sobject``."""
    mapping = _mapping("salesforce")
    spec = mapping["objects"].get(sobject)
    if spec is None:
        return None
    names = {platform: field for field, platform in spec["fields"].items()}
    return PlatformFields(names, external_id_field, mapping["version"], dict(spec.get("placeholders") or {}))


def as_version(value: object) -> int | None:
    """Our version property as the platform holds it (text); None when absent or not a number."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None
