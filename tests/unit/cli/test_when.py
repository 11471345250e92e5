"""Times typed on the command line: ISO 8601 or a duration ago, anything else one clear error."""

from __future__ import annotations

import time

import pytest

from pipeline.cli.when import parse_when
from pipeline.errors import ConfigError


def test_iso_times_and_durations_ago_become_epoch_milliseconds() -> None:
    """A zoned ISO time is exact, and ``2d`` is two days before now."""
    assert parse_when("2026-01-31T14:05:00Z", "--since") == 1_769_868_300_000
    assert abs(parse_when("2d", "--since") - (time.time() - 2 * 86400) * 1000) < 5000


def test_other_text_is_a_config_error_naming_the_option() -> None:
    """Text that is neither form fails with the option's name and the accepted forms."""
    with pytest.raises(ConfigError, match=r"^--until 'yesterday': expected an ISO time"):
        parse_when("yesterday", "--until")
