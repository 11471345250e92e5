"""Limits on the shape of one CDC message, checked on its bytes before ``json.loads`` sees them.

``json.loads`` recurses once per level of nesting (a message nested 100,000 deep raises
RecursionError) and refuses an integer literal of more than 4,300 digits (ValueError): neither is
an InvalidEventError, so either would stop the stage. ``limited_text`` refuses such a message
first, with a reason for its dead letter:

* size: at most ``MAX_MESSAGE_BYTES`` (1,000,000: a message within it can be dead-lettered whole,
  its headers included, under the producer's default ``max_request_size`` of 1 MiB; a Debezium
  contact event with its schema is a few KB);
* encoding: UTF-8, as JSON on Kafka is;
* nesting: at most ``MAX_DEPTH`` arrays and objects inside each other (a Debezium envelope with
  its schema needs 6);
* numbers: no literal with a run of more than ``MAX_NUMBER_DIGITS`` digits (an LSN has 20).

The limits are constants, not settings: they are far above what real contact events hold. What
the fields the pipeline keeps may contain (length, control characters, lone surrogates) is checked
when they are validated (``schemas.cdc``).

The common case costs a few C-speed passes over the bytes (count, translate, find); they are
looked at more closely, outside strings, only when those find many brackets or a long digit run.
"""

from __future__ import annotations

import re

from pipeline.errors import InvalidEventError

MAX_MESSAGE_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 100

# A JSON string (or an unterminated one, up to the end: a match never fails, so a scan is linear),
# a run of digits, or a structural character.
_TOKENS = re.compile(rb'(?P<string>"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z))|(?P<number>\d+)|[\[\]{}:,]', re.DOTALL)
_DIGITS_AS_ZERO = bytes(0 if byte in b"0123456789" else 1 for byte in range(256))  # translate + find: C speed
_LONG_DIGIT_RUN = bytes(MAX_NUMBER_DIGITS + 1)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENERS = frozenset(b"[{")
_PLAIN_KEY = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{0,63}")


def limited_text(value: bytes) -> str:
    """``value`` as text, for ``json.loads``; InvalidEventError if it is not UTF-8, too large,
    nested too deep or holds a number literal that is too long.

    UTF-8 first: in it, a byte below 0x80 is always that ASCII character, so brackets, quotes and
    digits can be counted on the bytes (``json.loads`` would also guess UTF-16 and UTF-32, where
    they cannot).
    """
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidEventError(
            f"message of {len(value):,} bytes is larger than the limit of {MAX_MESSAGE_BYTES:,} bytes"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEventError(f"undecodable JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if value.count(b"[") + value.count(b"{") > MAX_DEPTH and _too_deep(value):
        raise InvalidEventError(f"nesting deeper than {MAX_DEPTH} levels")
    if _LONG_DIGIT_RUN in value.translate(_DIGITS_AS_ZERO):
        where = _long_number_path(value)
        if where is not None:
            raise InvalidEventError(f"a number with more than {MAX_NUMBER_DIGITS} digits in {where}")
    return text


def _too_deep(value: bytes) -> bool:
    """Whether the brackets outside strings nest deeper than MAX_DEPTH.

    Outside strings: escaped backslashes, then escaped quotes removed, every other part between
    quotes is outside. Exact as far as the JSON is valid, and ``json.loads`` stops at the first
    place it is not.
    """
    unescaped = value.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPENERS else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _long_number_path(value: bytes) -> str | None:
    """Where the first number literal with too many digits stands (``source.lsn``,
    ``after.tags[2]``); None when every long run of digits is inside a string.

    Only called after the nesting check, so the path is at most MAX_DEPTH long.
    """
    path: list[str | int] = []  # per open container: the current key, or the current index
    key = "?"
    for token in _TOKENS.finditer(value):
        text = token.group()
        if token.lastgroup == "string":
            key = _key_name(text)
        elif token.lastgroup == "number":
            if len(text) > MAX_NUMBER_DIGITS:
                return _render(path)
        elif text == b"{":
            path.append("?")
        elif text == b"[":
            path.append(0)
        elif not path:
            continue  # not JSON here: json.loads stops before this
        elif text == b":" and isinstance(path[-1], str):
            path[-1] = key
        elif text == b"," and isinstance(path[-1], int):
            path[-1] += 1
        elif text in (b"]", b"}"):
            path.pop()
    return None


def _key_name(token: bytes) -> str:
    """A key as it may appear in a dead-letter reason: a plain identifier, else ``?`` (a key
    could be anything, an email address too)."""
    inner = token[1:-1]
    return inner.decode() if _PLAIN_KEY.fullmatch(inner) else "?"


def _render(path: list[str | int]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return text or "the message"
