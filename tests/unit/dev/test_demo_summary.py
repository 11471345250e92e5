"""The demo's verdict: a run is reconciled only when every change is accounted for."""

from __future__ import annotations

from pathlib import Path

from aiokafka import ConsumerRecord

from pipeline.dev.cdc_generator import INVALID_KINDS, generate_events
from pipeline.dev.demo import summarise
from pipeline.dev.reconcile import Reconciliation
from schemas.dead_letter import DeadLetter
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
    summary = summarise(GENERATED, Reconciliation(), [], letters, 1.0, Path("worker.log"))
    assert (summary["lost"], summary["stale"], summary["reconciled"]) == (0, 0, False)


def test_a_run_with_every_change_accounted_for_is_reconciled() -> None:
    letters = [letter("validate")] * INVALID_SENT
    assert summarise(GENERATED, Reconciliation(), [], letters, 1.0, Path("worker.log"))["reconciled"]
