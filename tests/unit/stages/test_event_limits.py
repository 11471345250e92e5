"""Limits on a CDC message's shape, checked before it is parsed."""

from __future__ import annotations

import json
import time

import pytest

from pipeline.errors import InvalidEventError
from pipeline.stages.event_limits import MAX_DEPTH, MAX_MESSAGE_BYTES, MAX_NUMBER_DIGITS, limited_text
from pipeline.stages.validate import decode_change

SOURCE = b'{"ts_ms": 1700000000000, "lsn": 100}'


def event(after: bytes, source: bytes = SOURCE) -> bytes:
    return b'{"op": "c", "after": ' + after + b', "source": ' + source + b"}"


def reason(value: bytes) -> str:
    with pytest.raises(InvalidEventError) as caught:
        decode_change(value, 0, 0)
    return str(caught.value)


def test_deep_nesting_is_refused_before_parsing() -> None:
    """JSON nested 100,000 deep (which makes json.loads raise RecursionError) is refused with the limit."""
    assert reason(b"[" * 100_000 + b"]" * 100_000) == f"nesting deeper than {MAX_DEPTH} levels"
    deep_in_a_field = event(b'{"id": 1, "tags": ' + b"[" * 70 + b"]" * 70 + b"}")
    assert reason(deep_in_a_field) == f"nesting deeper than {MAX_DEPTH} levels"


def test_nesting_is_counted_outside_strings_only() -> None:
    """Brackets inside strings (escaped quotes too) do not count; nesting up to the limit is fine."""
    brackets_in_text = json.dumps({"id": 1, "title": "[" * 300 + '\\" {{{' * 50}).encode()
    change = decode_change(event(brackets_in_text), 0, 0)
    assert change is not None and change.contact is not None and change.contact.title is not None
    at_the_limit = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert limited_text(at_the_limit) == at_the_limit.decode()


def test_a_long_integer_is_refused_naming_its_field() -> None:
    """An integer literal over 4,300 digits (int() raises ValueError) is refused, naming where it is."""
    assert reason(event(b'{"id": 1}', b'{"ts_ms": 1, "file": ' + b"9" * 5000 + b"}")) == (
        f"a number with more than {MAX_NUMBER_DIGITS} digits in source.file"
    )
    assert reason(event(b'{"id": 1, "tags": [1, 2, ' + b"1" * 101 + b"]}")).endswith("in after.tags[2]")


def test_a_long_number_names_no_key_that_is_not_a_plain_name() -> None:
    """A key that is not an identifier (it could be an email address) is not echoed in the reason."""
    assert reason(b'{"ann@example.com": ' + b"1" * 200 + b"}").endswith("digits in ?")


def test_long_digit_runs_inside_strings_are_text() -> None:
    """A long run of digits inside a string is not a number literal."""
    change = decode_change(event(json.dumps({"id": 1, "company": "7" * 500}).encode()), 0, 0)
    assert change is not None and change.contact is not None and change.contact.company == "7" * 500


def test_a_message_over_the_size_limit_is_refused_unread() -> None:
    """A message larger than the limit is refused by its size alone."""
    value = event(json.dumps({"id": 1, "company": "x" * MAX_MESSAGE_BYTES}).encode())
    assert reason(value) == f"message of {len(value):,} bytes is larger than the limit of {MAX_MESSAGE_BYTES:,} bytes"


def test_bytes_that_are_not_utf8_are_refused() -> None:
    """Random bytes and UTF-16 JSON are not UTF-8; an encoded surrogate neither."""
    assert reason(b"\xff\xfe{\x00}\x00").startswith("undecodable JSON: not UTF-8")
    assert reason(b'{"a": "\xed\xa0\x80"}').startswith("undecodable JSON: not UTF-8")


def test_hostile_shapes_are_checked_in_linear_time() -> None:
    """An unterminated string full of escaped quotes and a megabyte of brackets cost milliseconds."""
    started = time.perf_counter()
    for value in (b'"' + b'\\"' * 400_000, b"[]" * 500_000, b"[" + b'"' * 1_000_000):
        with pytest.raises(InvalidEventError):
            decode_change(value, 0, 0)
    assert time.perf_counter() - started < 2.0
