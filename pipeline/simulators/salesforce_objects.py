"""The simulated Salesforce org's Lead and Contact objects: fields, rules, and result items."""

from __future__ import annotations

from typing import Any

from pipeline.simulators.base import RejectedRequest
from pipeline.simulators.identifiers import is_valid_email
from pipeline.simulators.store import StoredRecord

EXTERNAL_ID_FIELD = "ContactSync_Id__c"
VERSION_FIELD = "ContactSync_Version__c"
_COMMON_FIELDS = ("FirstName", "LastName", "Email", "Phone", "Title", EXTERNAL_ID_FIELD, VERSION_FIELD)
FIELDS: dict[str, frozenset[str]] = {
    "Lead": frozenset({*_COMMON_FIELDS, "Company"}),
    "Contact": frozenset(_COMMON_FIELDS),
}
REQUIRED: dict[str, tuple[str, ...]] = {"Lead": ("LastName", "Company"), "Contact": ("LastName",)}
ID_PREFIX: dict[str, str] = {"Lead": "00Q", "Contact": "003"}
OBJECT_BY_PREFIX = {prefix: name for name, prefix in ID_PREFIX.items()}
ROLLED_BACK = "Record rolled back because not all records were valid and the request was using AllOrNone header"


def check_collection(sobject: str, body: object, max_records: int) -> list[dict[str, Any]]:
    """The records of a well-formed upsert body, or the 400 Salesforce gives a malformed one."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise RejectedRequest(400, "The request body must be an object with a records array.", code="JSON_PARSER_ERROR")
    for key, value in body.items():
        if key not in ("allOrNone", "records"):
            raise RejectedRequest(400, f'Unrecognized field "{key}"', code="JSON_PARSER_ERROR")
        if key == "allOrNone" and not isinstance(value, bool):
            raise RejectedRequest(400, "allOrNone must be a boolean.", code="JSON_PARSER_ERROR")
    records: list[Any] = body["records"]
    if len(records) > max_records:
        message = f"record limit reached. cannot submit more than {max_records} records into this call"
        raise RejectedRequest(400, message, code="EXCEEDED_ID_LIMIT")
    for position, record in enumerate(records):
        _check_record_shape(sobject, position, record)
    return records


def _check_record_shape(sobject: str, position: int, record: object) -> None:
    if not isinstance(record, dict):
        raise RejectedRequest(400, f"Record {position} is not a JSON object.", code="JSON_PARSER_ERROR")
    attributes = record.get("attributes")
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    if kind != sobject:
        message = f"Record {position}: attributes.type must be {sobject}, the sObject of the URI; it is {kind!r}."
        raise RejectedRequest(400, message, code="INVALID_INPUT")
    for name, value in record.items():
        if name == "attributes":
            continue
        if name not in FIELDS[sobject] and name not in ("Id", "id"):
            raise RejectedRequest(400, f"No such column '{name}' on sobject of type {sobject}", code="INVALID_FIELD", extra={"fields": [name]})
        allowed: tuple[type, ...] = (str, int, float) if name == VERSION_FIELD else (str,)
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            message = f"Cannot deserialize value of field {name} from {type(value).__name__}"
            raise RejectedRequest(400, message, code="JSON_PARSER_ERROR", extra={"fields": [name]})


def record_errors(sobject: str, record: dict[str, Any], existing: StoredRecord | None) -> list[dict[str, Any]]:
    """Per-record errors of one upsert record: missing required fields, invalid email, Id given."""
    if "Id" in record or "id" in record:
        return [error_item("INVALID_FIELD", "Upsert by external id: the record must not contain Id", ["Id"])]
    if not record.get(EXTERNAL_ID_FIELD):
        return [error_item("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{EXTERNAL_ID_FIELD}]", [EXTERNAL_ID_FIELD])]
    missing = [
        name
        for name in REQUIRED[sobject]
        if (existing is None and not record.get(name)) or (name in record and not record[name])
    ]
    if missing:
        return [error_item("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)]
    email = record.get("Email")
    if email and not is_valid_email(email):
        return [error_item("INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {email}", ["Email"])]
    return []


def error_item(status_code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": status_code, "message": message, "fields": fields or []}


def failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": None, "success": False, "errors": errors}


def roll_back(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``allOrNone`` with a failure: failed items keep their errors, every other one is rolled back."""
    rolled = failure([error_item("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK)])
    return [result if not result["success"] else rolled for result in results]


def injected_failure(kind: str, native_id: str | None) -> dict[str, Any]:
    """A per-record fault: a lock timeout (worth retrying) or a validation rule (not)."""
    if kind == "transient":
        message = f"unable to obtain exclusive access to this record or 1 records: {native_id or ''}".rstrip()
        return failure([error_item("UNABLE_TO_LOCK_ROW", message)])
    return failure([error_item("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Record rejected by validation rule ContactSync_Check")])
