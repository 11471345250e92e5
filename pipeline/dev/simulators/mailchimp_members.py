"""The simulated Mailchimp audience's members: the per-member checks and the JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.dev.simulators.identifiers import is_valid_email
from pipeline.dev.simulators.store import StoredRecord

ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"
RECORD_ID_TAG = "CSID"
VERSION_TAG = "CSVERSION"
_TRANSIENT = "The member could not be saved at this time; please try again."
_PERMANENT = "{email} has signed up to a lot of lists very recently; we're not allowing more signups for now."


def member_problem(member: dict[str, Any], merge_fields: tuple[str, ...]) -> tuple[str, str, str] | None:
    """(field, error, field_message) when Mailchimp refuses this member's data, else None."""
    email = member.get("email_address") or ""
    if not is_valid_email(email):
        error = f"{email} looks fake or invalid, please enter a real email address."
        return "email_address", error, "Invalid email address"
    unknown = sorted(set(member.get("merge_fields") or {}) - set(merge_fields))
    if unknown:
        return "merge_fields", "Your merge fields were invalid.", f"Not merge fields of this list: {', '.join(unknown)}"
    return None


def batch_error(
    email: str, error: str, *, code: str = "ERROR_GENERIC", field: str = "", field_message: str = ""
) -> dict[str, Any]:
    """One item of a batch subscribe answer's ``errors``."""
    return {"email_address": email, "error": error, "error_code": code, "field": field, "field_message": field_message}


def injected_error(email: str, kind: str) -> dict[str, Any]:
    """A per-member fault: a passing failure (transient) or Mailchimp's signup-abuse refusal."""
    return batch_error(email, _TRANSIENT if kind == "transient" else _PERMANENT.format(email=email))


def stored_fields(member: dict[str, Any], status: str) -> dict[str, Any]:
    """What a write stores: address, status and each merge field under its tag."""
    return {"email_address": member["email_address"], "status": status, **(member.get("merge_fields") or {})}


def member_json(record: StoredRecord, list_id: str, merge_fields: tuple[str, ...]) -> dict[str, Any]:
    """A list member as Mailchimp shows it; archived members have status ``archived``."""
    values = {tag: record.fields.get(tag, "") for tag in merge_fields}
    return {
        "id": record.native_id,
        "email_address": record.fields["email_address"],
        "unique_email_id": record.native_id[:10],
        "contact_id": record.native_id,
        "full_name": " ".join(str(values[tag]) for tag in ("FNAME", "LNAME") if values.get(tag)),
        "email_type": "html",
        "status": "archived" if record.archived else record.fields["status"],
        "merge_fields": values,
        "list_id": list_id,
        "timestamp_signup": iso(record.created_at),
        "last_changed": iso(record.updated_at),
        "tags": [],
        "_links": [],
    }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
