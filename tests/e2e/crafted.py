"""Hand-made CDC events for tests that need particular records (the generator's are random)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from pipeline.dev.cdc_generator import GeneratedEvent, Kind

VERSION_TS = int(time.time() * 1000)


def plain_upsert(
    record_id: str, *, seq: int = 1, ts: int = VERSION_TS, created: bool = False, **row: Any
) -> GeneratedEvent:
    """A plain-form upsert of a customer ``record_id`` whose version is ``ts * 1000 + seq``
    (``created``: the row's insert, op ``c``)."""
    data = {"email": f"{record_id}@example.com", "contact_type": "customer", **row}
    return _plain("c" if created else "upsert", record_id, seq, data, ts)


def plain_delete(record_id: str, *, seq: int, **row: Any) -> GeneratedEvent:
    """A plain-form delete of ``record_id`` (``row``: the columns the CDC tool knew) at ``seq``."""
    return _plain("delete", record_id, seq, row)


def _plain(op: str, record_id: str, seq: int, data: dict[str, Any], ts: int = VERSION_TS) -> GeneratedEvent:
    value = json.dumps({"op": op, "id": record_id, "ts": ts, "seq": seq, "data": data}).encode()
    kind = Kind.DELETE if op == "delete" else Kind.CREATE
    return GeneratedEvent(record_id.encode(), value, kind, record_id, ts * 1000 + seq)


def poison(record_id: str) -> GeneratedEvent:
    """An event that is not JSON: the validate stage dead-letters it."""
    return GeneratedEvent(record_id.encode(), b"{not json", Kind.INVALID_JSON, record_id, None)


RANDOM_BYTES = 1_048_401  # with its key, just under what a default aiokafka producer sends


def poison_messages(prefix: str) -> dict[str, GeneratedEvent]:
    """The messages that used to stop a worker (issue #10), keyed ``<prefix>-<what>``, by what they are."""

    def plain(name: str, **data: Any) -> bytes:
        row = {"email": f"{prefix}-{name}@example.com", "contact_type": "customer", **data}
        return json.dumps({"op": "upsert", "id": f"{prefix}-{name}", "ts": VERSION_TS, "seq": 1, "data": row}).encode()

    def debezium(name: str, **source: Any) -> bytes:
        after = {"id": f"{prefix}-{name}", "email": f"{prefix}-{name}@example.com", "contact_type": "customer"}
        return json.dumps({"op": "c", "after": after, "source": {"ts_ms": VERSION_TS, **source}}).encode()

    values = {
        "deep_json": b"[" * 100_000 + b"]" * 100_000,
        "huge_integer": plain("huge_integer").replace(b'"seq": 1', b'"seq": ' + b"9" * 4301),
        "huge_integer_in_source_file": debezium("huge_integer_in_source_file", file="mysql-bin." + "1" * 4301, pos=4),
        "deep_sequence": debezium("deep_sequence", sequence="[" * 100_000 + "]" * 100_000),
        "lone_surrogate": plain("lone_surrogate", first_name="Ann").replace(b'"Ann"', b'"\\ud800"'),
        "huge_first_name": plain("huge_first_name", first_name="x" * 1_000_000),
        "random_bytes": random.Random(10).randbytes(RANDOM_BYTES),
    }
    return {
        name: GeneratedEvent(f"{prefix}-{name}".encode(), value, Kind.INVALID_JSON, f"{prefix}-{name}", None)
        for name, value in values.items()
    }


def hostile_sample(prefix: str, count: int, seed: int = 7) -> list[GeneratedEvent]:
    """``count`` hostile and careless messages drawn like the fuzz test's categories (truncated, deeply
    nested, random bytes, wrong types, control characters, surrogates, negative or huge versions), each
    keyed ``<prefix>-<n>`` and each one the validate stage must dead-letter."""
    rng = random.Random(seed)

    def event(n: int) -> bytes:
        record_id = f"{prefix}-{n}"
        row: dict[str, Any] = {"email": f"{record_id}@example.com", "contact_type": "customer"}
        whole = {"op": "upsert", "id": record_id, "ts": VERSION_TS, "seq": 1, "data": row}
        text = json.dumps(whole)
        mutations = [
            lambda: text[: rng.randrange(1, len(text) - 1)].encode(),
            lambda: (b"{" + b'"a":{' * rng.randrange(65, 5000) + b"}" * 10),
            lambda: rng.randbytes(rng.randrange(1, 4096)),
            lambda: json.dumps({**whole, "id": rng.choice([True, 1.5, None, [], {}, ""])}).encode(),
            lambda: json.dumps({**whole, "ts": rng.choice([-1, "soon", 1.5, True])}).encode(),
            lambda: json.dumps({**whole, "op": rng.choice(["upsertt", 3, None, ""])}).encode(),
            lambda: json.dumps({**whole, "data": {**row, "email": f"a{chr(rng.randrange(0, 32))}b@x.com"}}).encode(),
            lambda: json.dumps({**whole, "data": {**row, "first_name": "x" * rng.randrange(1001, 50_000)}}).encode(),
            lambda: text.replace('"seq": 1', '"seq": ' + "9" * rng.randrange(101, 6000)).encode(),
            lambda: text.replace(f'"{record_id}@', '"\\udc00@').encode(),
            lambda: json.dumps({"op": "c", "after": {"id": record_id, **row},
                                "source": {"ts_ms": VERSION_TS, "lsn": -rng.randrange(1, 10**9)}}).encode(),
        ]
        return rng.choice(mutations)()

    return [
        GeneratedEvent(f"{prefix}-{n}".encode(), event(n), Kind.INVALID_JSON, f"{prefix}-{n}", None)
        for n in range(count)
    ]
