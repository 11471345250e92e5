"""The Prometheus exposition: names by the conventions, values from the lag sample, lanes and outcomes."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pipeline.delivery.rate_limit import ProviderLane
from pipeline.ops.lag import LagSampler, PartitionLag
from pipeline.ops.metrics import MetricsSnapshot, OutcomeCounts, render_metrics
from pipeline.settings import HubSpotSettings
from schemas.dispatch import Outcome


def _outcome(state: str) -> Outcome:
    return Outcome.model_validate(
        {"record_id": "1", "provider": "hubspot", "version": 1, "state": state, "at_ms": 0, "source_ts_ms": 0}
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_expose_stage_offsets_lag_outcomes_and_lanes() -> None:
    """Stage counters and lag come from the lag sample (topic labels without the prefix), deliveries
    from the counted outcomes, provider figures from the lanes, worker_fault letters per stage."""
    report = LagSampler("g").observe([PartitionLag("validate", "p.contacts.cdc", 0, 7, 0, 10)], now=1.0)
    counts = OutcomeCounts()
    counts.count([_outcome("delivered"), _outcome("delivered"), _outcome("retrying")])
    lane = ProviderLane("hubspot", HubSpotSettings())
    lane.stats.calls = 5
    lane.pause(30)

    snapshot = MetricsSnapshot(report, "p.", 4, counts.by_provider_state, {"hubspot": lane}, {"validate": 2})
    text = render_metrics(snapshot).decode()
    samples = _samples(text)

    assert samples[("contactsync_stage_events_in_total", (("stage", "validate"),))] == 7
    assert samples[("contactsync_topic_messages_total", (("topic", "contacts.cdc"),))] == 10
    assert samples[("contactsync_stage_lag_messages", (("stage", "validate"),))] == 3
    assert samples[("contactsync_dead_letters_total", ())] == 4
    assert samples[("contactsync_worker_fault_letters_total", (("stage", "validate"),))] == 2
    assert samples[("contactsync_deliveries_total", (("provider", "hubspot"), ("state", "delivered")))] == 2
    assert samples[("contactsync_deliveries_total", (("provider", "hubspot"), ("state", "retrying")))] == 1
    assert samples[("contactsync_provider_calls_total", (("provider", "hubspot"),))] == 5
    assert samples[("contactsync_provider_throttled_total", (("provider", "hubspot"),))] == 1
    assert 29 < samples[("contactsync_provider_paused_seconds", (("provider", "hubspot"),))] <= 30
    assert samples[("contactsync_provider_breaker_state", (("provider", "hubspot"), ("state", "closed")))] == 1
    assert "# TYPE contactsync_stage_last_commit_age_seconds gauge" in text
