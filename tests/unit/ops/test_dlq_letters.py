"""Selecting dead letters: every given criterion must hold, handled letters only when asked for."""

from __future__ import annotations

from pipeline.cli.dlq import letter_details, letter_lines
from pipeline.ops.dlq.letters import Letter, LetterFilter
from schemas.dead_letter import DeadLetter, HandledLetter


def _letter(offset: int, *, stage: str = "dispatch", failed_ms: int = 1000, handled: bool = False) -> Letter:
    story = DeadLetter(stage=stage, error_class="PermanentError", error_message="no", original_topic="t",
                       original_partition=0, original_offset=offset, first_failure_ms=failed_ms,
                       last_failure_ms=failed_ms, provider="hubspot")
    marker = HandledLetter(action="purged", at_ms=2000) if handled else None
    return Letter(0, offset, b"k%d" % offset, b"{}", (), story, marker)


def test_criteria_combine_and_the_time_window_is_half_open() -> None:
    """Stage, key and time criteria all apply; --since is inclusive and --until exclusive."""
    letters = [_letter(1, failed_ms=1000), _letter(2, failed_ms=2000), _letter(3, stage="route", failed_ms=1500)]

    def offsets(selection: LetterFilter) -> list[int]:
        return [letter.offset for letter in letters if selection.matches(letter)]

    assert offsets(LetterFilter(stage="dispatch")) == [1, 2]
    assert offsets(LetterFilter(since_ms=1000, until_ms=2000)) == [1, 3]
    assert offsets(LetterFilter(stage="dispatch", key="k2")) == [2]
    assert offsets(LetterFilter(refs=frozenset({"0:3", "0:9"}))) == [3]


def test_handled_and_headerless_letters_are_selected_only_when_they_can_be() -> None:
    """A handled letter needs include_handled; a letter without headers matches no story criterion."""
    handled = _letter(1, handled=True)
    headerless = Letter(0, 2, b"k", b"v", (), None, None)

    assert not LetterFilter().matches(handled) and LetterFilter(include_handled=True).matches(handled)
    assert LetterFilter(key="k").matches(headerless) and not LetterFilter(stage="dispatch").matches(headerless)
    assert not LetterFilter().selects and LetterFilter(provider="hubspot").selects


def test_a_reference_letter_is_listed_and_shown_as_what_it_is() -> None:
    """list marks a reference with the original's size; show says the value was not kept, where the
    original is, its digest, and prints its first bytes escaped (never raw control bytes)."""
    story = DeadLetter(stage="validate", error_class="InvalidEventError", error_message="undecodable JSON",
                       original_topic="p.contacts.cdc", original_partition=2, original_offset=41,
                       first_failure_ms=1000, last_failure_ms=1000, original_size=1_048_401, original_sha256="ab" * 32)
    reference = Letter(4, 7, b"r-1", b"\xea\x00{\"id", (), story, None)

    (row,) = letter_lines([reference], with_handled=False)[1:]
    shown = letter_details(reference)

    assert reference.is_reference and not _letter(1).is_reference
    assert "[reference to 1048401 bytes] undecodable JSON" in row
    assert shown[2] == (f"value: not kept, 1048401 bytes were too large to dead-letter whole (sha256 {'ab' * 32}); "
                        "the original is at p.contacts.cdc partition 2 offset 41 while retention keeps it")
    assert shown[3:5] == ["first 6 bytes:", '\\xea\\x00{"id']
