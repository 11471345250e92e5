"""Lag arithmetic and commit ages from successive readings (no broker)."""

from __future__ import annotations

from pipeline.ops.lag import LagSampler, PartitionLag


def _reading(stage: str, partition: int, committed: int | None, end: int, start: int = 0) -> PartitionLag:
    return PartitionLag(stage, f"contacts.{stage}", partition, committed, start, end)


def test_lag_counts_from_the_log_start_when_nothing_or_something_deleted_is_committed() -> None:
    """Without a commit, or with one below the log start (retention deleted it), the group resumes at the start."""
    assert _reading("validate", 0, None, 10, start=4).lag == 6
    assert _reading("validate", 0, 2, 10, start=4).lag == 6
    assert _reading("validate", 0, 7, 10, start=4).lag == 3


def test_commit_age_is_unknown_until_a_commit_is_seen_and_then_counts_from_that_reading() -> None:
    """A stage's age is None until its committed offsets change between readings, then the time since that reading."""
    sampler = LagSampler("g")
    first = sampler.observe([_reading("validate", 0, 5, 9), _reading("route", 0, 1, 1)], now=100.0)
    sampler.observe([_reading("validate", 0, 8, 9), _reading("route", 0, 1, 1)], now=105.0)
    later = sampler.observe([_reading("validate", 0, 8, 12), _reading("route", 0, 1, 1)], now=112.0)

    assert first.last_commit_age_s is None and first.observed_for_s == 0
    ages = {stage.stage: stage.last_commit_age_s for stage in later.stages}
    assert ages == {"validate": 7.0, "route": None}
    assert (later.last_commit_age_s, later.observed_for_s, later.lag) == (7.0, 12.0, 4)


def test_history_keeps_the_lag_per_stage_of_the_window_only() -> None:
    """Readings older than the history window are dropped from the chart's history."""
    sampler = LagSampler("g", history_s=60)
    for at in (0.0, 30.0, 61.0, 90.0):
        sampler.observe([_reading("validate", 0, 0, int(at))], now=at)

    assert list(sampler.history) == [(30.0, {"validate": 30}), (61.0, {"validate": 61}), (90.0, {"validate": 90})]
