"""The demo's verdict: a run is reconciled only when every change is accounted for."""

from __future__ import annotations

from pathlib import Path

from aiokafka import ConsumerRecord

from pipeline.dev.cdc_generator import INVALID_KINDS, generate_events
from pipeline.dev.demo import Burst, summarise
from pipeline.dev.reconcile import Reconciliation
from schemas.dead_letter import DeadLetter
from schemas.dispatch import Outcome
from schemas.headers import to_headers

GENERATED = list(generate_events(200, records=50, seed=3, invalid_ratio=0.05))
INVALID_SENT = sum(1 for event in GENERATED if event.kind in INVALID_KINDS)


def letter(stage: str) -> ConsumerRecord[bytes, bytes]:
    headers = to_headers(DeadLetter(
        stage=stage, error_class="InvalidEventError", error_message="x", original_topic="contacts.cdc",
        original_partition=0, original_offset=0, first_failure_ms=0, last_failure_ms=0,
    ))
    return ConsumerRecord("contacts.dlq", 0, 0, 0, 0, b"k", b"v", None, 1, 1, headers)


def test_a_run_whose_invalid_events_are_not_all_dead_lettered_is_not_reconciled() -> None:
    """Timing out before the last invalid event reached the DLQ exits non-zero, even with nothing lost."""
    assert INVALID_SENT > 1
    letters = [letter("validate")] * (INVALID_SENT - 1)
    summary = summarise(GENERATED, Reconciliation(), [], letters, Path("worker.log"), Burst(len(GENERATED), 0.0))
    assert (summary["lost"], summary["stale"], summary["reconciled"]) == (0, 0, False)


def test_a_run_with_every_change_accounted_for_is_reconciled() -> None:
    letters = [letter("validate")] * INVALID_SENT
    assert summarise(GENERATED, Reconciliation(), [], letters, Path("worker.log"), Burst(len(GENERATED), 0.0))["reconciled"]


def test_latency_is_reported_apart_for_the_burst_and_the_steady_rate() -> None:
    """A change made before the burst settled waited in its queue; one made after did not: the two
    latencies are never mixed into one figure."""
    burst = Burst(len(GENERATED), 0.0, seconds=2.0, settled_at_ms=10_000)
    outcomes = [delivered(at_ms=9_000 + wait, source_ts_ms=9_000) for wait in (800, 900, 1000)]
    outcomes += [delivered(at_ms=20_000 + wait, source_ts_ms=20_000) for wait in (40, 50, 60)]
    summary = summarise(GENERATED, Reconciliation(), outcomes, [], Path("worker.log"), burst)
    assert summary["burst_latency_ms"]["p50"] == 900
    assert summary["steady_latency_ms"]["p50"] == 50
    assert summary["burst_events_per_s"] == len(GENERATED) / 2.0
    assert summary["delivered"] == {"hubspot": 6}


def delivered(at_ms: int, source_ts_ms: int) -> Outcome:
    return Outcome(record_id="c-1", provider="hubspot", version=1, state="delivered", at_ms=at_ms,
                   source_ts_ms=source_ts_ms)
