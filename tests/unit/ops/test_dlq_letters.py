"""Selecting dead letters: every given criterion must hold, handled letters only when asked for."""

from __future__ import annotations

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
