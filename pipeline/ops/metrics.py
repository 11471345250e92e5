"""Prometheus metrics of a worker, rendered at scrape time from what the worker already knows.

Group-wide figures come from the broker (the newest lag sample and the DLQ's end offsets), so every
worker exports the same values for them: aggregate those with ``max``, not ``sum``. Per-worker
figures (provider lanes, delivery outcomes this worker counted) add up across workers.

Offset-based counters count messages: ``contactsync_stage_events_in_total`` is what a stage's group
has committed past on its input topic, ``contactsync_topic_messages_total`` what the stages wrote to
each topic (several stages write to some, so "out" is per topic), ``contactsync_dead_letters_total``
the DLQ's size. Resetting a stage's offsets (``contactsync replay``) lowers its counter; Prometheus
reads that as a counter reset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from pipeline.delivery.rate_limit import ProviderLane
from pipeline.ops.lag import LagReport
from schemas.dispatch import Outcome

BREAKER_STATES = ("closed", "half_open", "open")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format generate_latest writes by default


class OutcomeCounts:
    """Outcomes this worker recorded (``pipeline.delivery.outcomes`` counts them), per provider and state."""

    def __init__(self) -> None:
        self.by_provider_state: Counter[tuple[str, str]] = Counter()

    def count(self, outcomes: Iterable[Outcome]) -> None:
        self.by_provider_state.update((outcome.provider, outcome.state) for outcome in outcomes)


class WebhookCounts:
    """Webhook notifications this worker received, per provider and result (accepted, unauthorized,
    stale, malformed, too_large, unavailable), and the inbound changes its conflict stage decided,
    per provider and outcome (echo, unchanged, kept_ours, applied, deleted)."""

    def __init__(self) -> None:
        self.received: Counter[tuple[str, str]] = Counter()
        self.resolved: Counter[tuple[str, str]] = Counter()


@dataclass(frozen=True)
class MetricsSnapshot:
    lag: LagReport | None
    topic_prefix: str
    dead_letters: int
    outcomes: Mapping[tuple[str, str], int]
    lanes: Mapping[str, ProviderLane]
    worker_fault_letters: Mapping[str, int]  # per stage, by this worker (pipeline.kafka.worker_faults)
    webhooks: WebhookCounts = field(default_factory=WebhookCounts)


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from _stage_metrics(self._snapshot)
        dead = CounterMetricFamily("contactsync_dead_letters", "Messages ever written to the dead-letter topic.")
        dead.add_metric([], self._snapshot.dead_letters)
        yield dead
        deliveries = CounterMetricFamily(
            "contactsync_deliveries", "Delivery outcomes this worker recorded.", labels=["provider", "state"]
        )
        for (provider, state), count in sorted(self._snapshot.outcomes.items()):
            deliveries.add_metric([provider, state], count)
        yield deliveries
        given_up = CounterMetricFamily(
            "contactsync_worker_fault_letters",
            "Messages this worker dead-lettered as worker_fault: they had made workers stop too often.",
            labels=["stage"],
        )
        for stage, count in sorted(self._snapshot.worker_fault_letters.items()):
            given_up.add_metric([stage], count)
        yield given_up
        yield from _lane_metrics(self._snapshot.lanes)
        yield from _webhook_metrics(self._snapshot.webhooks)


def render_metrics(snapshot: MetricsSnapshot) -> bytes:
    """The Prometheus text exposition of ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


def _stage_metrics(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    events_in = CounterMetricFamily(
        "contactsync_stage_events_in", "Input messages the stage's group has committed past.", labels=["stage"]
    )
    written = CounterMetricFamily("contactsync_topic_messages", "Messages written to a stage topic.", labels=["topic"])
    lag = GaugeMetricFamily("contactsync_stage_lag_messages", "Input messages not yet processed.", labels=["stage"])
    age = GaugeMetricFamily(
        "contactsync_stage_last_commit_age_seconds", "Since the stage's group last committed (when seen).",
        labels=["stage"],
    )
    for stage in snapshot.lag.stages if snapshot.lag else ():
        events_in.add_metric([stage.stage], stage.committed)
        written.add_metric([stage.topic.removeprefix(snapshot.topic_prefix)], stage.end)
        lag.add_metric([stage.stage], stage.lag)
        if stage.last_commit_age_s is not None:
            age.add_metric([stage.stage], stage.last_commit_age_s)
    yield from (events_in, written, lag, age)


def _webhook_metrics(counts: WebhookCounts) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "contactsync_webhooks", "Webhook notifications this worker answered, by result.", labels=["provider", "result"]
    )
    for (provider, result), count in sorted(counts.received.items()):
        received.add_metric([provider, result], count)
    resolved = CounterMetricFamily(
        "contactsync_inbound_changes", "Platform changes the conflict stage decided, by outcome (echo: "
        "our own write coming back, dropped).", labels=["provider", "outcome"],
    )
    for (provider, outcome), count in sorted(counts.resolved.items()):
        resolved.add_metric([provider, outcome], count)
    yield from (received, resolved)


def _lane_metrics(lanes: Mapping[str, ProviderLane]) -> Iterator[Metric]:
    calls = CounterMetricFamily("contactsync_provider_calls", "HTTP requests sent.", labels=["provider"])
    throttled = CounterMetricFamily("contactsync_provider_throttled", "Throttle answers.", labels=["provider"])
    failed = CounterMetricFamily(
        "contactsync_provider_failed_calls", "Deliveries that failed as a whole (timeout, 5xx).", labels=["provider"]
    )
    in_flight = GaugeMetricFamily("contactsync_provider_in_flight", "Requests under way.", labels=["provider"])
    paused = GaugeMetricFamily(
        "contactsync_provider_paused_seconds", "Left of a throttle pause.", labels=["provider"]
    )
    share = GaugeMetricFamily(
        "contactsync_provider_limit_share_ratio", "This worker's share of the rate limit.", labels=["provider"]
    )
    breaker = GaugeMetricFamily(
        "contactsync_provider_breaker_state", "1 for the breaker's current state.", labels=["provider", "state"]
    )
    for name, lane in sorted(lanes.items()):
        calls.add_metric([name], lane.stats.calls)
        throttled.add_metric([name], lane.stats.throttled)
        failed.add_metric([name], lane.stats.failed_calls)
        in_flight.add_metric([name], lane.stats.in_flight)
        paused.add_metric([name], lane.paused_for)
        share.add_metric([name], lane.share)
        for state in BREAKER_STATES:
            breaker.add_metric([name, state], 1.0 if lane.breaker.state == state else 0.0)
    yield from (calls, throttled, failed, in_flight, paused, share, breaker)
