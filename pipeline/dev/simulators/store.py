"""The records a simulated platform holds, each with its full write history.

A record is addressed by the platform's own id (HubSpot object id, Salesforce Id, Mailchimp
subscriber hash). The pipeline writes its own record id and source version into two fields
(``record_id_field``, ``version_field``); the inspection views group by that record id, so one
contactsync record that was deleted and created again under a new platform id keeps one history.
Unique fields are indexed over live (not archived) records, per object type (Salesforce keeps
Leads and Contacts apart; the other platforms have one type, "").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Operation = Literal["create", "update", "archive"]


@dataclass(frozen=True)
class Write:
    """One change to one record, as the platform applied it."""

    at: float
    operation: Operation
    native_id: str
    fields: dict[str, Any]
    version: str | None
    request_seq: int

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "operation": self.operation,
            "native_id": self.native_id,
            "fields": self.fields,
            "version": self.version,
            "request_seq": self.request_seq,
        }


@dataclass
class StoredRecord:
    native_id: str
    fields: dict[str, Any]
    created_at: float
    updated_at: float
    object_type: str = ""
    archived: bool = False
    history: list[Write] = field(default_factory=list)


Listener = Callable[["StoredRecord", Operation, dict[str, Any]], None]
"""Told of every write: the record after it, the operation, and the fields whose value it changed."""


class RecordStore:
    """Records of one simulated platform; every method is synchronous, so a call is atomic."""

    def __init__(self, record_id_field: str, version_field: str, unique_fields: tuple[str, ...]) -> None:
        self.record_id_field = record_id_field
        self.version_field = version_field
        self.unique_fields = unique_fields
        self._records: dict[str, StoredRecord] = {}
        self._index: dict[tuple[str, str, str], str] = {}
        self.listeners: list[Listener] = []  # the simulator's webhook notifier

    def reset(self) -> None:
        self._records.clear()
        self._index.clear()

    def get(self, native_id: str) -> StoredRecord | None:
        return self._records.get(native_id)

    def find_live(self, unique_field: str, value: object, object_type: str = "") -> StoredRecord | None:
        """The live record whose ``unique_field`` equals ``value``, compared case-insensitively."""
        native_id = self._index.get((object_type, unique_field, _index_key(value)))
        return self._records.get(native_id) if native_id is not None else None

    def find_archived(self, unique_field: str, value: object) -> StoredRecord | None:
        """The most recently archived record whose ``unique_field`` equals ``value``."""
        matches = [record for record in self.scan(unique_field, value) if record.archived]
        return max(matches, key=lambda record: record.updated_at, default=None)

    def scan(self, field_name: str, value: object, object_type: str | None = None) -> list[StoredRecord]:
        """Every record (live or archived) whose ``field_name`` equals ``value`` case-insensitively."""
        return [
            record
            for record in self._records.values()
            if (object_type is None or record.object_type == object_type)
            and _index_key(record.fields.get(field_name)) == _index_key(value)
        ]

    def write(
        self, native_id: str, fields: dict[str, Any], *, at: float, request_seq: int, object_type: str = ""
    ) -> tuple[StoredRecord, bool]:
        """Create the record, or merge ``fields`` into it; returns it and whether it was (re)created."""
        record = self._records.get(native_id)
        created = record is None or record.archived
        if record is None:
            record = StoredRecord(native_id, {}, created_at=at, updated_at=at, object_type=object_type)
            self._records[native_id] = record
        self._unindex(record)
        changed = {name: value for name, value in fields.items() if created or record.fields.get(name) != value}
        record.fields.update(fields)
        record.archived = False
        record.updated_at = at
        self._append(record, "create" if created else "update", fields, at, request_seq)
        self._reindex(record)
        self._tell(record, "create" if created else "update", changed)
        return record, created

    def archive(self, native_id: str, *, at: float, request_seq: int) -> StoredRecord | None:
        """Archive (soft-delete) a live record; None when there is no live record of that id."""
        record = self._records.get(native_id)
        if record is None or record.archived:
            return None
        self._unindex(record)
        record.archived = True
        record.updated_at = at
        self._append(record, "archive", {}, at, request_seq)
        self._tell(record, "archive", {})
        return record

    def _tell(self, record: StoredRecord, operation: Operation, changed: dict[str, Any]) -> None:
        if changed or operation == "archive":
            for listener in self.listeners:
                listener(record, operation, changed)

    def record_id_of(self, record: StoredRecord) -> str | None:
        return as_text(record.fields.get(self.record_id_field))

    def version_of(self, record: StoredRecord) -> str | None:
        return as_text(record.fields.get(self.version_field))

    def current_records(self) -> dict[str, dict[str, Any]]:
        """Current state of every record, by contactsync record id (see ``_view``)."""
        return {key: self._view(records) for key, records in self._by_record_id().items()}

    def current_record(self, record_id: str) -> dict[str, Any] | None:
        records = self._by_record_id().get(record_id)
        return self._view(records) if records else None

    def _view(self, records: list[StoredRecord]) -> dict[str, Any]:
        """One record id's state: its live platform record (else its archived one), newest first."""
        newest = max(records, key=lambda record: (not record.archived, record.updated_at))
        return {
            "record_id": self.record_id_of(newest),
            "native_id": newest.native_id,
            "native_ids": [record.native_id for record in records],
            "object_type": newest.object_type,
            "archived": newest.archived,
            "version": self.version_of(newest),
            "fields": dict(newest.fields),
            "created_at": newest.created_at,
            "updated_at": newest.updated_at,
            "writes": sum(len(record.history) for record in records),
            "version_regressions": _regressions(self._history_of(records)),
        }

    def history(self, record_id: str) -> list[dict[str, Any]]:
        """Every write to any platform record carrying ``record_id``, oldest first."""
        return [write.as_json() for write in self._history_of(self._by_record_id().get(record_id, []))]

    def _by_record_id(self) -> dict[str, list[StoredRecord]]:
        groups: dict[str, list[StoredRecord]] = {}
        for record in self._records.values():
            key = self.record_id_of(record) or f"~{record.native_id}"
            groups.setdefault(key, []).append(record)
        return groups

    @staticmethod
    def _history_of(records: list[StoredRecord]) -> list[Write]:
        return sorted((write for record in records for write in record.history), key=lambda write: write.at)

    def _append(self, record: StoredRecord, operation: Operation, fields: dict[str, Any], at: float, seq: int) -> None:
        version = self.version_of(record)
        record.history.append(Write(at, operation, record.native_id, dict(fields), version, seq))

    def _unindex(self, record: StoredRecord) -> None:
        for name in self.unique_fields:
            key = (record.object_type, name, _index_key(record.fields.get(name)))
            if self._index.get(key) == record.native_id:
                del self._index[key]

    def _reindex(self, record: StoredRecord) -> None:
        for name in self.unique_fields:
            if record.fields.get(name) not in (None, ""):
                self._index[(record.object_type, name, _index_key(record.fields[name]))] = record.native_id


def _index_key(value: object) -> str:
    return str(value).lower()


def as_text(value: object) -> str | None:
    """A record id or version as text: None stays None, ``12.0`` (a JSON number) becomes ``12``."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _version_order(version: str) -> tuple[int, Decimal, str]:
    """Numeric versions (LSNs, ``ts.seq``) compare as numbers, any other string after them as text."""
    try:
        number = Decimal(version)
    except InvalidOperation:
        number = Decimal("NaN")
    return (0, number, "") if number.is_finite() else (1, Decimal(0), version)


def _regressions(history: list[Write]) -> int:
    """How many writes carried an older version than the write before them (stale overwrites)."""
    count, previous = 0, None
    for write in history:
        if write.operation == "archive" or write.version is None:
            continue
        if previous is not None and _version_order(write.version) < _version_order(previous):
            count += 1
        previous = write.version
    return count
