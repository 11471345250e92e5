"""The one SOQL shape the simulator answers: ``SELECT f[, ...] FROM Obj WHERE Field IN ('a', ...)``
(or ``WHERE Field = 'a'``), over live records. Anything else is ``MALFORMED_QUERY``, as a real
org says of a query it cannot parse. Object and field names are case-insensitive, as in SOQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.dev.simulators.base import RejectedRequest
from pipeline.dev.simulators.salesforce_objects import FIELDS, record_by_id
from pipeline.dev.simulators.store import RecordStore, StoredRecord

_LITERAL = r"'(?:[^'\\]|\\.)*'"
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_QUERY = re.compile(
    rf"""^\s*SELECT\s+(?P<fields>\w+(?:\s*,\s*\w+)*)
         \s+FROM\s+(?P<sobject>\w+)
         \s+WHERE\s+(?P<field>\w+)\s*
         (?:IN\s*\(\s*(?P<values>{_LITERAL}(?:\s*,\s*{_LITERAL})*)\s*\)|=\s*(?P<value>{_LITERAL}))\s*$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class LookupQuery:
    sobject: str
    fields: tuple[str, ...]
    where_field: str
    values: tuple[str, ...]


def parse_lookup(text: str) -> LookupQuery:
    """The query with catalog spellings, or 400 ``MALFORMED_QUERY`` / ``INVALID_TYPE`` / ``INVALID_FIELD``."""
    match = _QUERY.match(text)
    if match is None:
        raise RejectedRequest(400, f"unexpected token in query: {text[:80]}", code="MALFORMED_QUERY")
    sobject = _canonical(match["sobject"], FIELDS)
    if sobject is None:
        raise RejectedRequest(400, f"sObject type '{match['sobject']}' is not supported.", code="INVALID_TYPE")
    names = [_field(name.strip(), sobject) for name in match["fields"].split(",")]
    literals = re.findall(_LITERAL, match["values"] or match["value"])
    values = tuple(re.sub(r"\\(.)", _unescape, literal[1:-1]) for literal in literals)
    return LookupQuery(sobject, tuple(names), _field(match["field"], sobject), values)


def run_lookup(store: RecordStore, query: LookupQuery, api_version: str) -> list[dict[str, Any]]:
    """The query's rows: each live record of the object whose field equals one of the values."""
    matches: dict[str, StoredRecord] = {}
    for value in query.values:
        if query.where_field == "Id":
            record = record_by_id(store, value)
            candidates = [record] if record is not None and record.object_type == query.sobject else []
        else:
            candidates = store.scan(query.where_field, value, query.sobject)
        matches.update((record.native_id, record) for record in candidates if not record.archived)
    return [_row(api_version, query, record) for record in matches.values()]


def _row(api_version: str, query: LookupQuery, record: StoredRecord) -> dict[str, Any]:
    url = f"/services/data/{api_version}/sobjects/{query.sobject}/{record.native_id}"
    row: dict[str, Any] = {"attributes": {"type": query.sobject, "url": url}}
    for name in query.fields:
        row[name] = record.native_id if name == "Id" else record.fields.get(name)
    return row


def _field(name: str, sobject: str) -> str:
    canonical = _canonical(name, {*FIELDS[sobject], "Id"})
    if canonical is None:
        raise RejectedRequest(400, f"No such column '{name}' on entity '{sobject}'.", code="INVALID_FIELD")
    return canonical


def _unescape(match: re.Match[str]) -> str:
    return _ESCAPES.get(match[1], match[1])


def _canonical(name: str, known: Iterable[str]) -> str | None:
    return next((key for key in known if key.lower() == name.lower()), None)
