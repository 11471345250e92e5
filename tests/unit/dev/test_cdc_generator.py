from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import phonenumbers
import pytest

from pipeline.dev.cdc_generator import (
    CHANGE_KINDS,
    INVALID_KINDS,
    ExpectedRecord,
    GeneratedEvent,
    Kind,
    expected_state,
    generate_events,
)
from schemas.cdc import ContactRow, DebeziumChange, DebeziumEnvelope, PlainChange

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def events(count: int = 3000, **options: Any) -> list[GeneratedEvent]:
    options = {"records": 40, "seed": 7, "clock": lambda: NOW} | options
    return list(generate_events(count, **options))


def change(value: bytes | None) -> DebeziumChange:
    assert value is not None
    data = json.loads(value)
    return DebeziumEnvelope.model_validate(data).payload if "payload" in data else DebeziumChange.model_validate(data)


def test_same_seed_and_clock_give_the_same_bytes() -> None:
    """The stream is a function of seed and clock; another seed gives another stream."""
    assert events(seed=3) == events(seed=3)
    assert events(seed=3) != events(seed=4)


def test_count_is_exact_and_every_delete_is_followed_by_its_tombstone() -> None:
    """Exactly ``count`` messages, and each delete is followed at once by a tombstone of the same key."""
    deletes = 0
    for seed in range(20):
        stream = events(count=25, records=2, seed=seed)
        assert len(stream) == 25
        for i, event in enumerate(stream):
            if event.kind == Kind.DELETE:
                deletes += 1
                assert stream[i + 1] == GeneratedEvent(event.key, None, Kind.TOMBSTONE, event.record_id, None)
            if event.kind == Kind.TOMBSTONE:
                assert i > 0 and stream[i - 1].kind == Kind.DELETE
    assert deletes > 0


def test_lsn_grows_strictly_and_matches_version_and_key() -> None:
    """source.lsn is the event's version, grows strictly across the stream, and the key is the record id."""
    stream = [event for event in events(invalid_ratio=0.1) if event.kind in CHANGE_KINDS]
    versions = [event.version for event in stream]
    assert versions == sorted(set(versions))
    for event in stream:
        parsed = change(event.value)
        assert parsed.source.lsn == event.version
        assert event.key == str(event.record_id).encode()
        assert abs(parsed.source.ts_ms - NOW * 1000) < 1000


def test_each_record_is_created_before_it_is_updated_or_deleted() -> None:
    """A record's first change is a create or snapshot read; after a delete, it comes back only by a create."""
    alive: dict[str, bool] = {}
    for event in events():
        if event.kind not in CHANGE_KINDS:
            continue
        rid = str(event.record_id)
        if event.kind in (Kind.UPDATE, Kind.DELETE):
            assert alive.get(rid), f"{event.kind} of {rid} before its create"
        else:
            assert not alive.get(rid)
            assert event.kind == Kind.CREATE or rid not in alive, "snapshot reads only at first sight"
        alive[rid] = event.kind != Kind.DELETE
    assert Counter(e.kind for e in events())[Kind.SNAPSHOT] > 0


def test_fields_are_realistic() -> None:
    """Both Debezium forms appear; phones parse as valid numbers; types, flags and emails look like real data."""
    stream = [e for e in events() if e.kind in (Kind.CREATE, Kind.UPDATE, Kind.SNAPSHOT)]
    rows = [change(event.value).after or {} for event in stream]
    wrapped = sum((event.value or b"").startswith(b'{"schema":{') for event in stream)
    assert 0.3 < wrapped / len(stream) < 0.7
    assert {row["contact_type"] for row in rows} == {"lead", "prospect", "customer", "vendor"}
    assert all("@" in row["email"] and "." in row["email"].split("@")[1] for row in rows)
    phones = {row["phone"] for row in rows if row["phone"]}
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(phone, "US")) for phone in phones)
    assert any(phone.startswith("+") for phone in phones) and any(phone[0] in "(0123456789" for phone in phones)
    assert 0 < sum(row["do_not_sync"] for row in rows) < 0.1 * len(rows)
    assert 0 < sum(row["subscribed"] for row in rows) < len(rows)


def test_plain_form_parses_as_plain_changes() -> None:
    """With ``plain``, every change is a PlainChange whose seq is the event's version."""
    for event in events(count=300, plain=True):
        if event.kind in CHANGE_KINDS:
            parsed = PlainChange.model_validate_json(event.value or b"")
            assert (parsed.id, parsed.seq) == (event.record_id, event.version)
            assert parsed.op == ("delete" if event.kind == Kind.DELETE else "upsert")


@pytest.mark.parametrize("plain", [False, True])
def test_invalid_events_come_at_the_ratio_and_are_what_their_label_says(plain: bool) -> None:
    """About ``invalid_ratio`` of the messages are invalid, of every kind, each failing the way its label says."""
    stream = events(count=5000, invalid_ratio=0.2, plain=plain)
    invalid = [event for event in stream if event.kind in INVALID_KINDS]
    assert 0.17 < len(invalid) / len(stream) < 0.23
    assert set(Counter(event.kind for event in invalid)) == set(INVALID_KINDS)
    for event in invalid:
        assert event.record_id is None or not event.record_id.startswith("c-"), "outside the record pool"
        if event.kind == Kind.INVALID_JSON:
            with pytest.raises(json.JSONDecodeError):
                json.loads(event.value or b"")
            continue
        data = json.loads(event.value or b"")
        data = data.get("payload", data)
        row = data["data"] if plain else data["after"]
        if event.kind == Kind.MISSING_ID:
            assert event.key is None and "id" not in row and "id" not in data
        elif event.kind == Kind.BAD_EMAIL:
            assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", row["email"]) is None
        else:
            assert data["op"] == "x"


def test_no_invalid_events_unless_asked() -> None:
    """With the default ratio every message is a change or a tombstone."""
    assert {event.kind for event in events()} <= CHANGE_KINDS | {Kind.TOMBSTONE}


@pytest.mark.parametrize("options", [{"count": 0}, {"records": 0}, {"invalid_ratio": 1.5}])
def test_bad_arguments_are_refused_at_once(options: dict[str, Any]) -> None:
    """Out-of-range arguments raise ValueError when called, not when first iterated."""
    arguments = {"count": 10} | options
    with pytest.raises(ValueError):
        generate_events(arguments.pop("count"), **arguments)


def plain_event(kind: Kind, record_id: str, seq: int, email: str = "x@example.com") -> GeneratedEvent:
    op = "delete" if kind == Kind.DELETE else "upsert"
    data = None if kind == Kind.DELETE else {"id": record_id, "email": email}
    value = json.dumps({"op": op, "id": record_id, "ts": 1, "seq": seq, "data": data}).encode()
    return GeneratedEvent(record_id.encode(), value, kind, record_id, seq)


def test_expected_state_keeps_the_newest_version_whatever_the_order() -> None:
    """The fold keeps each record's highest version, marks deletes, and ignores tombstones and invalid events."""
    folded = expected_state(
        [
            plain_event(Kind.CREATE, "a", 1, "old@example.com"),
            plain_event(Kind.UPDATE, "a", 5, "new@example.com"),
            plain_event(Kind.UPDATE, "a", 3, "stale@example.com"),
            plain_event(Kind.CREATE, "b", 2),
            plain_event(Kind.DELETE, "b", 4),
            GeneratedEvent(b"b", None, Kind.TOMBSTONE, "b", None),
            GeneratedEvent(b"bad-1", b"{", Kind.INVALID_JSON, "bad-1", None),
        ]
    )
    assert set(folded) == {"a", "b"}
    assert folded["a"].version == 5 and not folded["a"].deleted
    assert folded["a"].contact is not None and folded["a"].contact.email == "new@example.com"
    assert folded["b"] == ExpectedRecord("b", 4, True, None)


def test_expected_state_of_a_generated_stream_matches_its_last_change_per_record() -> None:
    """On a generated Debezium stream, each record's expected state is its last change in stream order."""
    stream = events(invalid_ratio=0.05)
    last = {event.record_id: event for event in stream if event.kind in CHANGE_KINDS}
    folded = expected_state(stream)
    assert set(folded) == set(last)
    for record_id, event in last.items():
        expected = folded[str(record_id)]
        after = change(event.value).after
        assert (expected.version, expected.deleted) == (event.version, event.kind == Kind.DELETE)
        assert expected.contact == (None if after is None else ContactRow.model_validate(after))
