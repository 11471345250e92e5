"""Realistic change events for ``contacts.cdc``, as a CDC tool would write them; no Kafka here.

A pool of records is created, updated and deleted at random. Events are Debezium JSON (half of them
with the schema/payload wrapper) or the plain ``{op, id, ts, seq, data}`` form. The same seed and
clock give the same bytes. LSNs start from the clock, so a later run's versions are newer than an
earlier run's, and grow strictly across the whole stream.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import count as counter
from typing import Any

from schemas.cdc import ContactRow, DebeziumChange, DebeziumEnvelope, PlainChange


class Kind(StrEnum):
    """What a generated message is; change kinds are the Debezium ops."""

    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    SNAPSHOT = "r"
    TOMBSTONE = "tombstone"
    INVALID_JSON = "invalid_json"
    MISSING_ID = "missing_id"
    BAD_EMAIL = "bad_email"
    UNKNOWN_OP = "unknown_op"


CHANGE_KINDS = frozenset({Kind.CREATE, Kind.UPDATE, Kind.DELETE, Kind.SNAPSHOT})
INVALID_KINDS = (Kind.INVALID_JSON, Kind.MISSING_ID, Kind.BAD_EMAIL, Kind.UNKNOWN_OP)


@dataclass(frozen=True, slots=True)
class GeneratedEvent:
    """One Kafka message: key is the record id (UTF-8); version is the event's LSN, if it has one."""

    key: bytes | None
    value: bytes | None
    kind: str
    record_id: str | None
    version: int | None


@dataclass(frozen=True, slots=True)
class ExpectedRecord:
    """Where a record must end up: its newest version, and its fields unless that version deleted it."""

    record_id: str
    version: int
    deleted: bool
    contact: ContactRow | None


_FIRST = ("Ava", "Liam", "Mia", "Noah", "Zoe", "Omar", "Lena", "Raj", "Chen", "Sofia", "Jonas", "Amara")
_LAST = ("Smith", "Garcia", "Nguyen", "Müller", "Okafor", "Rossi", "Kowalski", "Tanaka", "Dubois", "Patel")
_COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Foods", "Hooli")
_TITLES = ("CTO", "Head of Marketing", "Sales Manager", "Engineer", "Procurement Lead", "Founder")
_MAIL_HOSTS = ("gmail.com", "outlook.com", "yahoo.com", "acme.com", "globex.com", "initech.com", "hooli.com")
_CONTACT_TYPES = ("lead", "prospect", "customer", "vendor")
_US_AREAS = ("212", "312", "415", "617", "646", "202", "303", "512", "206", "305")
# {a}: a US area code, N: a digit 2-9, #: any digit. US national forms assume the US default region.
_PHONE_FORMATS = (
    "+1{a}N######", "+1 {a} N## ####", "({a}) N##-####", "{a}-N##-####", "{a}.N##.####", "1-{a}-N##-####",
    "+44 20 7946 0###", "+49 30 N######", "+33 1 ## ## ## ##", "+61 2 9### ####",
)
_VARYING = ("email", "phone", "company", "title", "contact_type", "subscribed", "do_not_sync")  # names stay
_BAD_EMAILS = ("jane.doe.example.com", "jane.doe@", "@example.com", "jane doe@example.com")
_PLAIN_OPS = {"c": "upsert", "u": "upsert", "r": "upsert", "d": "delete"}
_SOURCE = {"version": "2.7.3.Final", "connector": "postgresql", "name": "crm", "db": "crm", "schema": "public"}


def _struct(field: str, name: str, columns: dict[str, str], optional: bool = True) -> dict[str, Any]:
    fields = [{"type": kind, "optional": column != "id", "field": column} for column, kind in columns.items()]
    return {"type": "struct", "fields": fields, "optional": optional, "name": name, "field": field}


_ROW_TYPES = {column: "string" for column in ContactRow.model_fields} | {
    "subscribed": "boolean",
    "do_not_sync": "boolean",
    "updated_at": "int64",
}
_SOURCE_TYPES = {key: "string" for key in (*_SOURCE, "snapshot", "table")} | {"ts_ms": "int64", "lsn": "int64"}
# Serialised once: the wrapper's schema is the same for every event.
_ENVELOPE_SCHEMA = json.dumps(
    {
        "type": "struct",
        "name": "crm.public.contacts.Envelope",
        "optional": False,
        "fields": [
            _struct("before", "crm.public.contacts.Value", _ROW_TYPES),
            _struct("after", "crm.public.contacts.Value", _ROW_TYPES),
            _struct("source", "io.debezium.connector.postgresql.Source", _SOURCE_TYPES, optional=False),
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
    },
    separators=(",", ":"),
).encode()


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class _Stream:
    """The state behind one generated stream: the random source, the clock, the LSN and every row."""

    def __init__(self, seed: int | None, plain: bool, clock: Callable[[], float]) -> None:
        self._rng = random.Random(seed)
        self._plain = plain
        self._clock = clock
        self._lsn = int(clock() * 1000) * 1_000_000
        self._rows: dict[str, dict[str, Any] | None] = {}  # None: deleted
        self._bad_ids = counter(1)

    def step(self, records: int, invalid_ratio: float, room: int) -> list[GeneratedEvent]:
        """The next one or two messages (a delete and its tombstone), never more than ``room``."""
        rng = self._rng
        if rng.random() < invalid_ratio:
            return [self._invalid(rng.choice(INVALID_KINDS))]
        record_id = f"c-{rng.randrange(records):06d}"
        row = self._rows.get(record_id)
        if row is None:
            first_sight = record_id not in self._rows
            kind = Kind.SNAPSHOT if first_sight and rng.random() < 0.2 else Kind.CREATE
            after = self._row(record_id)
            self._rows[record_id] = after
            return [self._change(kind, record_id, None, after)]
        if room >= 2 and rng.random() < 0.05:
            self._rows[record_id] = None
            before = row if rng.random() < 0.5 else {"id": record_id}  # REPLICA IDENTITY FULL or DEFAULT
            tombstone = GeneratedEvent(record_id.encode(), None, Kind.TOMBSTONE, record_id, None)
            return [self._change(Kind.DELETE, record_id, before, None), tombstone]
        changed = rng.sample(_VARYING, k=rng.randint(1, 3))
        after = row | self._fields(changed, row["id"], row["first_name"], row["last_name"])
        self._rows[record_id] = after
        return [self._change(Kind.UPDATE, record_id, row if rng.random() < 0.5 else None, after)]

    def _invalid(self, kind: Kind) -> GeneratedEvent:
        """An event for a record outside the pool, so that invalid events never touch the expected state."""
        record_id = f"bad-{next(self._bad_ids):06d}"
        row = self._row(record_id)
        if kind is Kind.MISSING_ID:
            del row["id"]
            return self._change(Kind.CREATE, None, None, row, kind)
        if kind is Kind.BAD_EMAIL:
            row["email"] = self._rng.choice(_BAD_EMAILS)
        op = "x" if kind is Kind.UNKNOWN_OP else Kind.CREATE  # no CDC tool writes op "x"
        event = self._change(op, record_id, None, row, kind)
        if kind is Kind.INVALID_JSON:
            assert event.value is not None
            return replace(event, value=event.value[: len(event.value) // 2], version=None)
        return event

    def _change(
        self,
        op: str,
        record_id: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        kind: str | None = None,
    ) -> GeneratedEvent:
        self._lsn += self._rng.randint(1, 256)
        ts_ms = int(self._clock() * 1000)
        if self._plain:
            data = {"op": _PLAIN_OPS.get(op, op), "id": record_id, "ts": ts_ms, "seq": self._lsn, "data": after}
            if record_id is None:
                del data["id"]
            value = _dumps(data)
        else:
            snapshot = "true" if op == Kind.SNAPSHOT else "false"
            source = _SOURCE | {"ts_ms": ts_ms, "snapshot": snapshot, "table": "contacts", "lsn": self._lsn}
            lag_ms = self._rng.randint(1, 40)  # the connector reads the change a little after the commit
            payload = _dumps({"before": before, "after": after, "source": source, "op": op, "ts_ms": ts_ms + lag_ms})
            wrapped = self._rng.random() < 0.5
            value = b'{"schema":' + _ENVELOPE_SCHEMA + b',"payload":' + payload + b"}" if wrapped else payload
        key = record_id.encode() if record_id is not None else None
        return GeneratedEvent(key, value, kind or op, record_id, self._lsn)

    def _row(self, record_id: str) -> dict[str, Any]:
        first, last = self._rng.choice(_FIRST), self._rng.choice(_LAST)
        varying = self._fields(_VARYING, record_id, first, last)
        return {"id": record_id, "first_name": first, "last_name": last} | varying

    def _fields(self, names: Iterable[str], record_id: str, first: str, last: str) -> dict[str, Any]:
        """New values for the named columns of a contact called ``first last``, and ``updated_at``.

        Emails carry the record's number, so no two records share one: platforms keyed by email
        (Mailchimp's members, HubSpot's unique email) would merge or refuse them, which is a
        conflict in the source data, not something the pipeline can settle.
        """
        rng = self._rng
        values: dict[str, Any] = {}
        for name in names:
            match name:
                case "email":
                    local = f"{first}.{last}".lower().replace("ü", "ue")
                    number = "".join(ch for ch in record_id if ch.isdigit())
                    values[name] = f"{local}.{number}{rng.choice('abcdefgh')}@{rng.choice(_MAIL_HOSTS)}"
                case "phone":
                    values[name] = self._phone() if rng.random() < 0.85 else None
                case "company":
                    values[name] = rng.choice(_COMPANIES) if rng.random() < 0.85 else None
                case "title":
                    values[name] = rng.choice(_TITLES) if rng.random() < 0.8 else None
                case "contact_type":
                    values[name] = rng.choice(_CONTACT_TYPES)
                case "subscribed":
                    values[name] = rng.random() < 0.4
                case "do_not_sync":
                    values[name] = rng.random() < 0.02
        values["updated_at"] = int(self._clock() * 1_000_000)  # a Debezium MicroTimestamp
        return values

    def _phone(self) -> str:
        template = self._rng.choice(_PHONE_FORMATS).format(a=self._rng.choice(_US_AREAS))
        digits = iter(f"{self._rng.randrange(10**15):015d}")
        return "".join(
            next(digits) if char == "#" else "23456789"[int(next(digits)) % 8] if char == "N" else char
            for char in template
        )


def generate_events(
    count: int,
    *,
    records: int = 1000,
    seed: int | None = None,
    invalid_ratio: float = 0.0,
    plain: bool = False,
    clock: Callable[[], float] = time.time,
) -> Iterator[GeneratedEvent]:
    """``count`` messages about a pool of ``records`` records; ``invalid_ratio`` of them invalid.

    Arguments are checked at once (``ValueError``); the events are made lazily, the clock read as
    each one is made.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if records < 1:
        raise ValueError(f"records must be at least 1, got {records}")
    if not 0.0 <= invalid_ratio <= 1.0:
        raise ValueError(f"invalid ratio must be between 0 and 1, got {invalid_ratio}")
    return _events(_Stream(seed, plain, clock), count, records, invalid_ratio)


def _events(stream: _Stream, count: int, records: int, invalid_ratio: float) -> Iterator[GeneratedEvent]:
    emitted = 0
    while emitted < count:
        for event in stream.step(records, invalid_ratio, room=count - emitted):
            yield event
            emitted += 1


def _after_image(value: bytes) -> dict[str, Any] | None:
    data = json.loads(value)
    if "payload" in data:
        return DebeziumEnvelope.model_validate(data).payload.after
    if "source" in data:
        return DebeziumChange.model_validate(data).after
    plain = PlainChange.model_validate(data)
    return None if plain.op in ("delete", "d") else plain.data


def expected_state(events: Iterable[GeneratedEvent]) -> dict[str, ExpectedRecord]:
    """Fold generated events into the final state of each record: what every provider must end up holding."""
    state: dict[str, ExpectedRecord] = {}
    for event in events:
        if event.kind not in CHANGE_KINDS:
            continue
        assert event.record_id is not None and event.version is not None and event.value is not None
        current = state.get(event.record_id)
        if current is not None and current.version >= event.version:
            continue
        after = _after_image(event.value)
        contact = None if after is None else ContactRow.model_validate(after)
        state[event.record_id] = ExpectedRecord(event.record_id, event.version, after is None, contact)
    return state
