"""Recording outcomes: the outcome message, the recording stage's own status row, the /metrics count."""

from __future__ import annotations

from typing import Any

from pipeline.delivery.outcomes import OutcomeRecorder, outcome
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.metrics import OutcomeCounts
from pipeline.settings import KafkaSettings
from pipeline.stages.status import status_key
from schemas.dispatch import Outcome
from schemas.status import ProviderStatus
from tests.unit.kafka.doubles import Event, MemoryTable, Message

CATALOG = TopicCatalog.load(KafkaSettings().topics_file, "t.")


def event(record_id: str, partition: int) -> Event:
    return Event(Message(CATALOG.dispatch("hubspot"), partition=partition, offset=0, key=record_id.encode(), value=b""))


def test_a_batch_writes_each_row_once_in_its_events_partition_and_counts_every_outcome() -> None:
    """Each outcome among the batch's outputs gets its message; the stage's row for the record and
    provider is written once, newest entry, in the event's partition, with its changelog message among
    the outputs; an outcome left out of the outputs (its event dead-lettered) writes no row."""
    table: Any = MemoryTable(CATALOG.record_status_changelog)
    counts = OutcomeCounts()
    recorder = OutcomeRecorder(CATALOG.outcomes, table, "dispatch", counts)
    a, b = event("a", 2), event("b", 4)
    retrying = recorder.record(a, outcome(record_id="a", provider="hubspot", version=5, state="retrying", source_ts_ms=0))
    delivered = recorder.record(a, outcome(record_id="a", provider="hubspot", version=5, state="delivered",
                                           source_ts_ms=0, provider_id="h-1"))
    recorder.record(b, outcome(record_id="b", provider="hubspot", version=1, state="delivered", source_ts_ms=0))
    other = Outgoing("t.elsewhere", b"a", b"{}")

    outgoing = recorder.with_rows([retrying, other, delivered])

    assert outgoing[:3] == [retrying, other, delivered]
    assert Outcome.model_validate_json(delivered.value or b"").state == "delivered" and delivered.key == b"a"
    rows = outgoing[3:]
    key = status_key("a", "hubspot", "dispatch")
    assert [(m.topic, m.key, m.partition) for m in rows] == [(CATALOG.record_status_changelog, key, 2)]
    stored = ProviderStatus.model_validate_json(table.data[key])
    assert (stored.state, stored.version, stored.provider_id) == ("delivered", 5, "h-1")
    assert table.data.written_in[key] == 2
    assert status_key("b", "hubspot", "dispatch") not in table.data
    assert dict(counts.by_provider_state) == {("hubspot", "retrying"): 1, ("hubspot", "delivered"): 1}

    assert recorder.with_rows([]) == []  # nothing recorded before is kept for the next batch
