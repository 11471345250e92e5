"""The simulated HubSpot portal's contact properties, their rules, and its JSON shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pipeline.dev.simulators.base import RejectedRequest
from pipeline.dev.simulators.identifiers import is_valid_email
from pipeline.dev.simulators.store import StoredRecord

STANDARD_PROPERTIES = frozenset({"email", "firstname", "lastname", "phone", "company", "jobtitle"})
CUSTOM_PROPERTIES = frozenset({"contactsync_id", "contactsync_version"})
KNOWN_PROPERTIES = STANDARD_PROPERTIES | CUSTOM_PROPERTIES
UNIQUE_PROPERTIES = ("email", "contactsync_id")
SYSTEM_PROPERTIES = ("hs_object_id", "createdate", "lastmodifieddate")
DEFAULT_READ_PROPERTIES = ("email", "firstname", "lastname")
_TRANSIENT = ("INTERNAL_ERROR", "Internal error while processing this input; try again.", "500")
_RULE = "Rejected by a portal validation rule"
_PERMANENT = (
    "VALIDATION_ERROR",
    f'Property values were not valid: [{{"isValid":false,"message":"{_RULE}","error":"INVALID_OPTION"}}]',
    "error",
)


def check_upsert_inputs(inputs: list[dict[str, Any]]) -> None:
    """400 unless every input names a unique ``idProperty`` and only known, valid properties."""
    for item in inputs:
        if "idProperty" not in item:
            raise RejectedRequest(400, f"idProperty is required to upsert; input {item['id']} has none.")
        check_id_property(item["idProperty"])
    problems = [problem for item in inputs for problem in invalid_property_values(item["properties"])]
    if problems:
        raise property_values_rejection(problems)


def injected_failure(kind: str, input_id: str) -> dict[str, Any]:
    """A per-input fault: an internal error (transient) or a validation rule (permanent)."""
    category, message, status = _TRANSIENT if kind == "transient" else _PERMANENT
    return input_error(category, message, [input_id], status)


def invalid_property_values(properties: dict[str, str]) -> list[dict[str, Any]]:
    """HubSpot's per-property verdicts (``isValid: false`` items) for one input's properties."""
    problems = []
    for name, value in properties.items():
        if name not in KNOWN_PROPERTIES:
            problems.append(_verdict(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
        elif name == "email" and value and not is_valid_email(value):
            problems.append(_verdict(name, "INVALID_EMAIL", f"Email address {value} is invalid"))
    return problems


def property_values_rejection(problems: list[dict[str, Any]]) -> RejectedRequest:
    """The 400 HubSpot answers when any input carries an unknown property or a bad value."""
    details = [
        {"message": item["message"], "code": item["error"], "context": {"propertyName": [item["name"]]}}
        for item in problems
    ]
    message = f"Property values were not valid: {json.dumps(problems, separators=(',', ':'))}"
    return RejectedRequest(400, message, code="VALIDATION_ERROR", extra={"errors": details})


def check_id_property(id_property: str | None) -> None:
    """``idProperty`` must name a unique contact property (``email`` or ``contactsync_id``)."""
    if id_property is None:
        return
    if id_property not in KNOWN_PROPERTIES:
        verdict = _verdict(id_property, "PROPERTY_DOESNT_EXIST", f'Property "{id_property}" does not exist')
        raise property_values_rejection([verdict])
    if id_property not in UNIQUE_PROPERTIES:
        message = f"Unable to perform upsert by non-unique 0-1 property {id_property}"
        raise RejectedRequest(400, message, code="VALIDATION_ERROR")


def contact_json(record: StoredRecord, properties: list[str] | None = None) -> dict[str, Any]:
    """A ``SimplePublicObject``: the requested properties (all when None) plus the system ones."""
    names = list(record.fields) if properties is None else properties
    values = {name: str(record.fields[name]) for name in names if record.fields.get(name) is not None}
    values.update(
        hs_object_id=record.native_id, createdate=iso(record.created_at), lastmodifieddate=iso(record.updated_at)
    )
    body: dict[str, Any] = {
        "id": record.native_id,
        "properties": values,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "archived": record.archived,
    }
    if record.archived:
        body["archivedAt"] = iso(record.updated_at)
    return body


def input_error(category: str, message: str, ids: list[str], status: str = "error") -> dict[str, Any]:
    """One ``StandardError`` item of a 207 answer's ``errors``.

    ``status`` is "error", as HubSpot sends in practice; injected transient failures say "500"
    (the spec documents the field as the HTTP status code), so an adapter can tell them apart.
    """
    return {
        "status": status,
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "errors": [],
        "links": {},
    }


def batch_answer(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], started: float
) -> tuple[int, dict[str, Any]]:
    """200 ``BatchResponse...`` when nothing failed, else 207 ``...WithErrors``."""
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(datetime.now(UTC).timestamp()),
    }
    if not errors:
        return 200, body
    return 207, {**body, "numErrors": len(errors), "errors": errors}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _verdict(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name, "localizedErrorMessage": message}
