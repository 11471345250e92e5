"""Property-based fuzzing of the stage functions with hostile and careless CDC messages.

Whatever arrives on ``contacts.cdc``, ``decode_change`` either returns a change or raises
InvalidEventError (what the validate stage dead-letters), and a change it returns serialises, fits
in one Kafka message, and goes through the transform stage's ``transform`` and every provider's
mapping, which may refuse it only with MappingError (what the route stage dead-letters). Nothing
else may be raised. The examples are derandomised (the same ones on every run) and their number is
explicit per category; the counts are printed at the end (``pytest -s``).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InvalidEventError, MappingError
from pipeline.providers import build_mappers
from pipeline.settings import ProvidersSettings, RoutingSettings
from pipeline.stages.transform import transform
from pipeline.stages.validate import decode_change
from schemas.cdc import ContactRow, DebeziumSource
from schemas.contact import ContactChange
from schemas.dead_letter import DeadLetter
from schemas.headers import to_headers

PROVIDERS = ("hubspot", "salesforce", "mailchimp")
ROUTING = RoutingSettings()
MAPPERS = build_mappers(ProvidersSettings())
PRODUCER_MAX_BYTES = 1_048_576  # aiokafka's default max_request_size: every output must fit

TALLY: Counter[tuple[str, str]] = Counter()  # (category, "valid" | "refused") -> events
REFUSALS: Counter[str] = Counter()  # kind of refusal -> events
MAPPED: Counter[str] = Counter()  # "mapped" | "MappingError" -> (change, provider) pairs
MUTATED: Counter[tuple[str, ...]] = Counter()  # field path -> events with that field mutated


@dataclass(frozen=True)
class Raw:
    """JSON text placed as is (json.dumps cannot write a 5,000-digit integer or 100,000 levels)."""

    text: bytes


DELETE = object()  # as a field's new value: the field is removed


def encode(document: Any, *, ensure_ascii: bool = True) -> bytes:
    raws: list[bytes] = []

    def placeholder(value: object) -> str:
        if not isinstance(value, Raw):
            raise TypeError(value)
        raws.append(value.text)
        return f"@@raw{len(raws) - 1}@@"

    data = json.dumps(document, default=placeholder, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    for index, raw in enumerate(raws):
        data = data.replace(b'"@@raw%d@@"' % index, raw, 1)
    return data


# --- plausible events, many of them valid ---------------------------------------------------------

ROW_FIELDS = (*ContactRow.model_fields, "updated_at")  # and a column the pipeline ignores
SOURCE_FIELDS = tuple(DebeziumSource.model_fields)

emails = st.builds("{}@{}".format, st.text(min_size=1, max_size=8), st.sampled_from(["example.com", "b.co", "x", ""]))
names = st.one_of(st.none(), st.sampled_from(["Ann", "  ANN ", "McDonald", "Ñúñez", ""]), st.text(max_size=12))
rows = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(-10, 10**15), st.text(max_size=12), st.sampled_from(["c-000001", "7", " "]))},
    optional={
        "email": st.one_of(st.none(), emails, st.sampled_from(["Ann@Example.com", "not-an-email", " a@b.co "])),
        "phone": st.one_of(
            st.none(),
            st.sampled_from(["(415) 555-2671", "+44 20 7946 0958", "call me", "12", "+1 415 555 26712345"]),
            st.text(alphabet="0123456789+-() x", max_size=25),
        ),
        "first_name": names, "last_name": names, "company": names, "title": names,
        "contact_type": st.one_of(st.none(), st.sampled_from(["lead", "customer", "prospect", "LEAD", ""])),
        "subscribed": st.booleans(),
        "do_not_sync": st.booleans(),
        "updated_at": st.integers(0, 2**62),
    },
)
sources = st.fixed_dictionaries(
    {"ts_ms": st.integers(0, 2**45)},
    optional={
        "lsn": st.integers(0, 2**64 - 1),
        "sequence": st.one_of(st.just('["100","205"]'), st.lists(st.integers(0, 10**20).map(str), max_size=3).map(json.dumps)),
        "file": st.sampled_from(["mysql-bin.000003", "bin", ""]),
        "pos": st.integers(0, 2**40),
        "row": st.integers(0, 100),
        "snapshot": st.sampled_from(["true", "false", "last", True, False, None]),
        "connector": st.sampled_from(["postgresql", "mysql"]),
        "table": st.just("contacts"),
    },
)
debezium = st.fixed_dictionaries(
    {"op": st.sampled_from("cudr"), "before": st.none() | rows, "after": st.none() | rows, "source": sources},
    optional={"ts_ms": st.integers(0, 2**45)},
)
wrapped = st.fixed_dictionaries({"schema": st.just({"type": "struct", "fields": [{"field": "op"}]}), "payload": debezium})
plain = st.fixed_dictionaries(
    {"op": st.sampled_from(["upsert", "delete", "c", "u", "d", "r"]), "id": rows.map(lambda row: row["id"]),
     "ts": st.integers(0, 2**45)},
    optional={"seq": st.integers(0, 2**32), "data": st.none() | rows},
)
events = st.one_of(plain, debezium, wrapped)


# --- one valid event of each form, and the paths of its fields -----------------------------------

ROW = {"id": "c-000001", "email": "Ann@Example.com", "phone": "(415) 555-2671", "first_name": "ANN",
       "last_name": "McDonald", "company": "Acme", "title": "CTO", "contact_type": "lead", "subscribed": True,
       "do_not_sync": False, "updated_at": 1_700_000_000_000_000}
POSTGRES = {"ts_ms": 1_700_000_000_000, "lsn": 24_023_928, "sequence": '["24023800","24023928"]',
            "snapshot": "false", "connector": "postgresql", "table": "contacts"}
MYSQL = {"ts_ms": 1_700_000_000_000, "file": "mysql-bin.000003", "pos": 154, "row": 0, "snapshot": False,
         "connector": "mysql", "table": "contacts"}
TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "plain": [{"op": "upsert", "id": "c-000001", "ts": 1_700_000_000_000, "seq": 3, "data": ROW}],
    "debezium": [{"op": "u", "before": ROW, "after": ROW, "source": source, "ts_ms": 1_700_000_000_040}
                 for source in (POSTGRES, MYSQL)],
}
TEMPLATES["wrapped"] = [{"schema": {"type": "struct", "fields": [{"field": "op"}]}, "payload": payload}
                        for payload in TEMPLATES["debezium"]]
"""A valid event of each form with every field set: one field changed shows how that field is handled."""

_DEBEZIUM_PATHS = [
    *[(key,) for key in ("op", "before", "after", "source", "ts_ms")],
    *[(image, field) for image in ("before", "after") for field in ROW_FIELDS],
    *[("source", field) for field in SOURCE_FIELDS],
]
PATHS: list[tuple[str, tuple[str, ...]]] = [
    *[("plain", (key,)) for key in ("op", "id", "ts", "seq", "data")],
    *[("plain", ("data", field)) for field in ROW_FIELDS],
    *[("debezium", path) for path in _DEBEZIUM_PATHS],
    *[("wrapped", (key,)) for key in ("schema", "payload")],
    *[("wrapped", ("payload", *path)) for path in _DEBEZIUM_PATHS],
]
"""Every field of every form: the plain form, a bare Debezium payload and a wrapped one."""


def put(document: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``path`` (containers made on the way; DELETE removes
    the field)."""
    document = copy.deepcopy(document)
    *parents, last = path
    node = document
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return document


def placed(values: st.SearchStrategy[object]) -> st.SearchStrategy[tuple[tuple[str, ...], dict[str, Any]]]:
    """A valid event of some form with one of ``values`` at one of its fields, and that field's path."""
    return st.tuples(st.sampled_from(PATHS), st.integers(0, 1), values).map(
        lambda t: (t[0][1], put(TEMPLATES[t[0][0]][t[1] % len(TEMPLATES[t[0][0]])], t[0][1], t[2]))
    )


# --- hostile values ------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=10)),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
control_text = st.text(st.characters(categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Lu", "Nd")), min_size=1, max_size=12)
huge_numbers = st.builds(
    lambda sign, digits, tail: Raw(sign + b"7" * digits + tail),
    st.sampled_from([b"", b"-"]),
    st.one_of(st.integers(1, 120), st.integers(4_290, 20_000)),
    st.sampled_from([b"", b".5", b"e10", b"E-400"]),
)
deep_nesting = st.builds(
    lambda shape, depth: Raw({
        "arrays": b"[" * depth + b"]" * depth,
        "objects": b'{"a":' * depth + b"1" + b"}" * depth,
        "mixed": b'[{"a":' * depth + b"1" + b"}]" * depth,
        "unclosed": b"[" * depth,
    }[shape]),
    st.sampled_from(["arrays", "objects", "mixed", "unclosed"]),
    st.one_of(st.integers(0, 80), st.integers(80, 150_000)),
)
huge_text = st.one_of(st.integers(990, 1_010), st.sampled_from([65_536, 998_000, 1_000_001, 1_048_577])).map("A".__mul__)
wrong_values = st.one_of(
    json_values, control_text, huge_numbers, deep_nesting, st.sampled_from([DELETE, "", " ", True, 1.0, -1, []]),
)


# --- the property --------------------------------------------------------------------------------

def through_the_stages(category: str, value: bytes, offset: int) -> None:
    """Decode ``value``; a change must serialise, fit in a message, transform and map (or be refused
    by a mapping with MappingError); a refusal must be an InvalidEventError whose dead letter can be
    written. Any other exception fails the test."""
    try:
        change = decode_change(value, captured_at_ms=1_700_000_000_000, offset=offset)
    except InvalidEventError as exc:
        letter = DeadLetter(stage="validate", error_class="InvalidEventError", error_message=str(exc),
                            original_topic="contacts.cdc", original_partition=0, original_offset=offset,
                            first_failure_ms=0, last_failure_ms=0)
        assert sum(len(header) for _, header in to_headers(letter)) < 4_096
        TALLY[category, "refused"] += 1
        REFUSALS[_kind(str(exc))] += 1
        return
    assert change is not None
    TALLY[category, "valid"] += 1
    for message in _outputs(change):
        assert len(message) < PRODUCER_MAX_BYTES


def _outputs(change: ContactChange) -> Iterator[bytes]:
    validated = change.model_dump_json().encode()
    assert ContactChange.model_validate_json(validated) == change
    yield validated
    transformed, _ = transform(change, None, ROUTING, PROVIDERS)
    yield transformed.model_dump_json().encode()
    for mapper in MAPPERS.values():
        try:
            record = mapper(transformed.change).model_copy(update={"dropped_fields": transformed.dropped_fields})
        except MappingError:
            MAPPED["MappingError"] += 1
            continue
        MAPPED["mapped"] += 1
        yield record.model_dump_json().encode()


_KINDS = (
    ("message of", "message too large"), ("not UTF-8", "not UTF-8"), ("undecodable JSON", "not JSON"),
    ("nesting deeper", "nested too deep"), ("a number with more", "number too long"),
    ("expected a JSON object", "not an object"), ("has no record id", "no record id"),
    ("email is not a valid address", "invalid email"), ("record id", "bad record id"),
    ("control character", "control character"), ("lone surrogate", "lone surrogate"),
    ("at most 1000 characters", "text too long"), ("greater than or equal to 0", "negative version"),
    ("invalid event", "other invalid field"),
)


def _kind(reason: str) -> str:
    return next(kind for marker, kind in _KINDS if marker in reason)


def run(category: str, strategy: st.SearchStrategy[bytes], examples: int) -> None:
    """``examples`` derandomised examples of ``strategy`` through the stages, all of them counted."""

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(strategy, st.integers(0, 2**63 - 1))
    def property_holds(value: bytes, offset: int) -> None:
        through_the_stages(category, value, offset)

    before = TALLY[category, "valid"] + TALLY[category, "refused"]
    property_holds()
    assert TALLY[category, "valid"] + TALLY[category, "refused"] - before >= examples


@pytest.fixture(scope="module", autouse=True)
def print_counts() -> Iterator[None]:
    yield
    categories = sorted({category for category, _ in TALLY})
    total = sum(TALLY.values())
    valid = sum(count for (_, outcome), count in TALLY.items() if outcome == "valid")
    print(f"\nstage fuzz: {total:,} events, {valid:,} valid changes, {total - valid:,} refused with InvalidEventError; "
          f"mappings: {MAPPED['mapped']:,} mapped, {MAPPED['MappingError']:,} MappingError; 0 other exceptions")
    for category in categories:
        print(f"  {category:<34} {TALLY[category, 'valid']:>6,} valid {TALLY[category, 'refused']:>6,} refused")
    print("  refusals: " + ", ".join(f"{kind} {count:,}" for kind, count in REFUSALS.most_common()))


# --- the categories (10,600 events) --------------------------------------------------------------

def test_random_bytes_are_refused_or_decoded() -> None:
    """Random bytes: never anything but a change or InvalidEventError."""
    run("random bytes", st.binary(max_size=400), 1_500)


def test_truncated_events_are_refused() -> None:
    """Plain and Debezium events (wrapped or not) cut anywhere."""
    cut = st.builds(lambda value, share: value[: int(len(value) * share)], events.map(encode), st.floats(0, 1))
    run("truncated JSON", cut, 1_000)


def test_deep_nesting_anywhere_is_refused_before_parsing() -> None:
    """Arrays and objects nested up to 150,000 deep, as the whole message or in any field."""
    whole = deep_nesting.map(lambda raw: raw.text)
    run("deeply nested JSON", st.one_of(whole, placed(deep_nesting).map(lambda t: encode(t[1]))), 1_000)


def test_huge_numbers_anywhere_are_refused_or_bounded() -> None:
    """Number literals of up to 20,000 digits, with fractions and exponents, in any field."""
    run("huge numbers", placed(huge_numbers).map(lambda t: encode(t[1])), 1_000)


def test_huge_strings_never_give_an_output_too_large_to_produce() -> None:
    """Strings around the text limit and up to the message limit, in any field."""
    run("huge strings", placed(huge_text).map(lambda t: encode(t[1])), 600)


def test_surrogates_and_control_characters_are_refused_or_written() -> None:
    """Lone surrogates, C0/C1 controls, format and separator characters in any field, as \\u escapes
    or as raw (invalid) UTF-8."""
    run("surrogates and control characters",
        st.builds(lambda t, ascii_only: encode(t[1], ensure_ascii=ascii_only), placed(control_text), st.booleans()),
        1_500)


def test_every_field_of_every_form_with_wrong_values() -> None:
    """Each field of the plain form, a bare and a wrapped Debezium event set to wrong types, empty,
    negative, huge or deeply nested values, or removed; every field is hit."""

    def counted(where_and_document: tuple[tuple[str, ...], dict[str, Any]]) -> bytes:
        MUTATED[where_and_document[0]] += 1
        return encode(where_and_document[1])

    run("every field mutated", placed(wrong_values).map(counted), 3_000)
    assert {path for _, path in PATHS} <= set(MUTATED)


def test_plausible_events_become_changes_that_transform_and_map() -> None:
    """Plain and Debezium events with plausible values, many of them valid."""
    run("plain and Debezium events", events.map(encode), 1_000)
    assert TALLY["plain and Debezium events", "valid"] > 300
