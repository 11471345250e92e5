"""Dead letters: whole when the producer can send them, else a reference that loses nothing it could keep."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.errors import OutputTooLargeError
from pipeline.kafka.dead_letters import EXCERPT_BYTES, error_text, letter_message
from pipeline.kafka.producing import Outgoing, message_size, require_fit
from schemas.dead_letter import DeadLetter
from schemas.headers import from_headers

STORY = DeadLetter(stage="validate", error_class="InvalidEventError", error_message="undecodable JSON",
                   original_topic="p.contacts.cdc", original_partition=3, original_offset=41,
                   first_failure_ms=1, last_failure_ms=1)
LIMIT = 10_000


def test_a_letter_that_fits_keeps_key_and_value_byte_identical() -> None:
    """Below the limit, the letter is the original key and value with the story in headers."""
    letter = letter_message("p.contacts.dlq", b"c-1", b"x" * 9_000, STORY, LIMIT)

    assert (letter.key, letter.value) == (b"c-1", b"x" * 9_000)
    assert from_headers(DeadLetter, letter.headers) == STORY and not STORY.is_reference


def test_a_letter_too_large_becomes_a_reference_with_size_digest_and_first_bytes() -> None:
    """Over the limit, the letter keeps where the original is, its size, its sha256 and its first bytes,
    and is small enough to send."""
    value = bytes(range(256)) * 40  # 10,240 bytes, not UTF-8

    letter = letter_message("p.contacts.dlq", b"c-1", value, STORY, LIMIT)

    story = from_headers(DeadLetter, letter.headers)
    assert story.is_reference and story.original_size == len(value)
    assert story.original_sha256 == hashlib.sha256(value).hexdigest()
    assert (story.original_topic, story.original_partition, story.original_offset) == ("p.contacts.cdc", 3, 41)
    assert (story.error_class, story.error_message) == ("InvalidEventError", "undecodable JSON")
    assert letter.key == b"c-1" and letter.value == value[:EXCERPT_BYTES]
    assert message_size(letter) < 2 * EXCERPT_BYTES + 1_000


def test_a_huge_key_is_cut_too_and_a_tombstone_stays_a_tombstone() -> None:
    """A key as large as the limit is cut to the excerpt size; a tombstone's reference has no value."""
    letter = letter_message("p.contacts.dlq", b"k" * LIMIT, None, STORY, LIMIT)

    story = from_headers(DeadLetter, letter.headers)
    assert letter.key == b"k" * EXCERPT_BYTES and letter.value is None
    assert story.original_size == 0 and message_size(letter) <= LIMIT


def test_error_text_is_cut_and_always_encodable() -> None:
    """An error message is kept to 1,000 characters, and a lone surrogate it quotes is escaped."""
    assert len(error_text(ValueError("x" * 5_000))) == 1_000
    assert error_text(ValueError("bad \ud800 char")) == "bad \\ud800 char"


def test_require_fit_names_the_topic_and_both_sizes() -> None:
    """An output over the limit is the event's error, saying where it was going and by how much."""
    require_fit([Outgoing("t", b"k", b"x" * 100)], 1_000)
    with pytest.raises(OutputTooLargeError, match=r"its output to t would be 2\d{3} bytes, .*max_request_size 1000\)"):
        require_fit([Outgoing("t", b"k", b"x" * 100), Outgoing("t", b"k", b"x" * 2_000)], 1_000)


@pytest.mark.parametrize("headers", [[], [("contactsync.attempts", b"1")]])
def test_require_fit_takes_a_message_of_exactly_the_limit_and_refuses_one_byte_more(
    headers: list[tuple[str, bytes]],
) -> None:
    """The limit is the producer's own size of the message, to the byte, with or without headers."""
    exact = message_size(Outgoing("t", b"key", b"x" * 5_000, headers))
    require_fit([Outgoing("t", b"key", b"x" * 5_000, headers)], exact)
    with pytest.raises(OutputTooLargeError):
        require_fit([Outgoing("t", b"key", b"x" * 5_000, headers)], exact - 1)
