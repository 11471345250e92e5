"""The simulated Salesforce org's Lead and Contact objects: fields, rules, and collection results."""

from __future__ import annotations

from typing import Any

from pipeline.dev.simulators.base import RejectedRequest
from pipeline.dev.simulators.identifiers import is_salesforce_id, is_valid_email, salesforce_id_18
from pipeline.dev.simulators.store import RecordStore, StoredRecord

EXTERNAL_ID_FIELD = "ContactSync_Id__c"
VERSION_FIELD = "ContactSync_Version__c"
_COMMON_FIELDS = ("FirstName", "LastName", "Email", "Phone", "Title", EXTERNAL_ID_FIELD, VERSION_FIELD)
FIELDS: dict[str, frozenset[str]] = {
    "Lead": frozenset({*_COMMON_FIELDS, "Company"}),
    "Contact": frozenset(_COMMON_FIELDS),
}
REQUIRED: dict[str, tuple[str, ...]] = {"Lead": ("LastName", "Company"), "Contact": ("LastName",)}
ID_PREFIX: dict[str, str] = {"Lead": "00Q", "Contact": "003"}
ROLLED_BACK = "Record rolled back because not all records were valid and the request was using AllOrNone header"
_LOCKED = "unable to obtain exclusive access to this record or 1 records: {id}"
_RULE = "Record rejected by validation rule ContactSync_Check"


def check_collection(sobject: str, body: object, max_records: int) -> list[dict[str, Any]]:
    """The records of a well-formed upsert body, or the 400 Salesforce gives a malformed one."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise RejectedRequest(400, "The body must be an object with a records array.", code="JSON_PARSER_ERROR")
    for key, value in body.items():
        if key not in ("allOrNone", "records"):
            raise RejectedRequest(400, f'Unrecognized field "{key}"', code="JSON_PARSER_ERROR")
        if key == "allOrNone" and not isinstance(value, bool):
            raise RejectedRequest(400, "allOrNone must be a boolean.", code="JSON_PARSER_ERROR")
    records: list[Any] = body["records"]
    check_collection_size(len(records), max_records)
    for position, record in enumerate(records):
        _check_record_shape(sobject, position, record)
    return records


def check_collection_size(count: int, max_records: int) -> None:
    if count > max_records:
        message = f"record limit reached. cannot submit more than {max_records} records into this call"
        raise RejectedRequest(400, message, code="EXCEEDED_ID_LIMIT")


def _check_record_shape(sobject: str, position: int, record: object) -> None:
    if not isinstance(record, dict):
        raise RejectedRequest(400, f"Record {position} is not a JSON object.", code="JSON_PARSER_ERROR")
    attributes = record.get("attributes")
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    if kind != sobject:
        message = f"Record {position}: attributes.type must be {sobject}, the sObject of the URI, not {kind!r}."
        raise RejectedRequest(400, message, code="INVALID_INPUT")
    for name, value in record.items():
        if name == "attributes":
            continue
        if name not in FIELDS[sobject] and name not in ("Id", "id"):
            message = f"No such column '{name}' on sobject of type {sobject}"
            raise RejectedRequest(400, message, code="INVALID_FIELD", extra={"fields": [name]})
        allowed: tuple[type, ...] = (str, int, float) if name == VERSION_FIELD else (str,)
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            message = f"Cannot deserialize value of field {name} from {type(value).__name__}"
            raise RejectedRequest(400, message, code="JSON_PARSER_ERROR", extra={"fields": [name]})


def record_errors(sobject: str, record: dict[str, Any], existing: StoredRecord | None) -> list[dict[str, Any]]:
    """Per-record errors of one upsert record: Id given, required fields missing, invalid email."""
    if "Id" in record or "id" in record:
        return [error_item("INVALID_FIELD", "Upsert by external id: the record must not contain Id", ["Id"])]
    required = REQUIRED[sobject] + (EXTERNAL_ID_FIELD,)
    missing = [
        name
        for name in required
        if (existing is None and not record.get(name)) or (name in record and not record[name])
    ]
    if missing:
        return [error_item("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)]
    email = record.get("Email")
    if email and not is_valid_email(email):
        return [error_item("INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {email}", ["Email"])]
    return []


def delete_errors(value: str, record: StoredRecord | None) -> list[dict[str, Any]]:
    """Per-id errors of a collection delete: malformed id, unknown record, already deleted."""
    if not is_salesforce_id(value) or value[:3] not in ID_PREFIX.values():
        return [error_item("MALFORMED_ID", f"malformed id {value}")]
    if record is None:
        return [error_item("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
    if record.archived:
        return [error_item("ENTITY_IS_DELETED", "entity is deleted")]
    return []


def fail_duplicate_keys(records: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    """Records sharing an external id value all fail with DUPLICATE_VALUE."""
    keys = [str(record.get(EXTERNAL_ID_FIELD) or "").lower() for record in records]
    for position, key in enumerate(keys):
        if key and keys.count(key) > 1:
            message = f"Duplicate external id specified: {records[position][EXTERNAL_ID_FIELD]}"
            results[position] = failure([error_item("DUPLICATE_VALUE", message, [EXTERNAL_ID_FIELD])])


def record_by_id(store: RecordStore, value: str) -> StoredRecord | None:
    """The record of a 15- or 18-character id, live or deleted."""
    return store.get(salesforce_id_18(value)) if is_salesforce_id(value) else None


def error_item(status_code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": status_code, "message": message, "fields": fields or []}


def failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": None, "success": False, "errors": errors}


def success(native_id: str | None) -> dict[str, Any]:
    return {"id": native_id, "success": True, "errors": []}


def settle(results: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]:
    """``allOrNone`` with a failure: failed items keep their errors, every other one is rolled back."""
    if not all_or_none or all(result["success"] for result in results):
        return results
    rolled = [error_item("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK)]
    return [result if not result["success"] else failure(rolled) for result in results]


def injected_failure(kind: str, native_id: str | None) -> dict[str, Any]:
    """A per-record fault: a lock timeout (worth retrying) or a validation rule (not)."""
    if kind == "transient":
        return failure([error_item("UNABLE_TO_LOCK_ROW", _LOCKED.format(id=native_id or "").rstrip())])
    return failure([error_item("FIELD_CUSTOM_VALIDATION_EXCEPTION", _RULE)])
