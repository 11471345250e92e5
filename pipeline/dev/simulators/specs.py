"""Request-body validation against the OpenAPI documents in ``specs/``.

The two documents are verbatim copies of ``../shared/specs``. Two errata are applied when loading,
because the documents are stricter than the platforms or incomplete:

- Mailchimp ``merge_fields`` values: the spec says ``{"type": "object"}``, but Mailchimp takes
  strings (text, phone, email merge fields), numbers and objects (address fields).
- References to schemas the Mailchimp excerpt left out (``MarketingPermission``, ``Notes``, ...)
  are replaced by an empty (accept-anything) schema.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft4Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

HUBSPOT_SPEC = "hubspot-contacts-v3.openapi.json"
MAILCHIMP_SPEC = "mailchimp-lists-members.openapi.json"
_MERGE_FIELD_VALUE = {"type": ["string", "number", "object"]}


def schema_problems(spec_file: str, component: str, body: object) -> list[str]:
    """Every way ``body`` breaks ``#/components/schemas/<component>``, as ``path: message`` lines."""
    validator = _validator(spec_file, component)
    problems = []
    for error in sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        problems.append(f"{where}: {error.message}")
    return problems


@cache
def _validator(spec_file: str, component: str) -> Draft4Validator:
    uri = f"urn:contactsync:simulators:{spec_file}"
    resource: Resource[Any] = DRAFT4.create_resource(_load(spec_file))
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return Draft4Validator({"$ref": f"{uri}#/components/schemas/{component}"}, registry=registry)


@cache
def _load(spec_file: str) -> dict[str, Any]:
    text = resources.files("pipeline.dev.simulators").joinpath("specs").joinpath(spec_file).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    patched: dict[str, Any] = _apply_errata(document, set(document["components"]["schemas"]))
    return patched


def _apply_errata(node: Any, known: set[str]) -> Any:
    if isinstance(node, list):
        return [_apply_errata(item, known) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] not in known:
        return {}
    patched = {key: _apply_errata(value, known) for key, value in node.items()}
    merge_fields = patched.get("properties", {}).get("merge_fields")
    if isinstance(merge_fields, dict) and "additionalProperties" in merge_fields:
        merge_fields["additionalProperties"] = _MERGE_FIELD_VALUE
    return patched
