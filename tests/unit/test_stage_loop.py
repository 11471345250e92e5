"""What one event can do to a stage: every failure of its own is dead-lettered with its reason; only
faults of the worker stop the stage; the stops recorded against messages cut a batch into segments."""

from __future__ import annotations

import asyncio
import re

import faust
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
)
from faust.types import EventT, Message
from pydantic_core import PydanticSerializationError

from pipeline.errors import OutputTooLargeError, WorkerFaultError
from pipeline.kafka.producing import Outgoing, message_size, request_limit
from pipeline.kafka.stage_loop import decode_each, is_worker_fault, per_event
from pipeline.kafka.worker_faults import Segment, broker_trouble, segments
from pipeline.stages.validate import decode_change
from schemas.dead_letter import DeadLetter
from schemas.headers import from_headers
from tests.e2e.crafted import plain_upsert, poison_messages

APP = faust.App("unit-stage-loop")  # its producer settings only: nothing is started
CDC, VALIDATED, DLQ = "p.contacts.cdc", "p.contacts.validated", "p.contacts.dlq"


def event(value: bytes | None, offset: int = 0, *, key: bytes = b"k", partition: int = 0) -> EventT:
    message = Message(CDC, partition, offset, 1.0, 0, [], key, value, None)
    return faust.Event(APP, key, value, [], message)


def validate(event: EventT) -> list[Outgoing]:
    """The validate stage's work on one event, as agents/validate.py does it."""
    change = decode_change(event.message.value, captured_at_ms=0, offset=event.message.offset)
    assert change is not None
    return [Outgoing(VALIDATED, change.record_id.encode(), change.model_dump_json().encode())]


def stories(messages: list[Outgoing]) -> dict[bytes | None, DeadLetter]:
    return {m.key: from_headers(DeadLetter, m.headers) for m in messages if m.topic == DLQ}


@pytest.mark.parametrize(
    ("error", "worker_fault"),
    [
        (RecursionError("maximum recursion depth exceeded"), False),
        (ValueError("Exceeds the limit (4300 digits) for integer string conversion"), False),
        (PydanticSerializationError("surrogates not allowed"), False),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), False),
        (OutputTooLargeError("too large"), False),
        (KeyError("provider"), False),
        (WorkerFaultError("table last-known: RocksDB I/O error"), True),
        (MemoryError(), True),
        (asyncio.CancelledError(), True),
        (KeyboardInterrupt(), True),
    ],
)
def test_what_stops_the_stage_is_a_fault_of_the_worker_and_nothing_else(error: BaseException, worker_fault: bool) -> None:
    """An error raised while one event is handled is the event's fault, whatever its type, unless it is
    marked as the worker's (table store), is memory running out, or is not an Exception at all."""
    assert is_worker_fault(error) is worker_fault


async def test_each_poison_message_is_dead_lettered_with_its_reason_and_the_batch_goes_on() -> None:
    """The six messages that stopped workers (issue #10), mixed with valid changes, through the validate
    stage's work: each is dead-lettered with the reason the event limits give, each valid change comes
    out, and those too large to dead-letter whole become reference letters."""
    poison = poison_messages("u")
    valid = [plain_upsert(f"u-valid-{i}") for i in range(3)]
    batch = [event(e.value, offset, key=e.key) for offset, e in enumerate([valid[0], *poison.values(), *valid[1:]])]

    out = await per_event("validate", DLQ, validate)(batch)

    assert sorted(m.key for m in out if m.topic == VALIDATED) == sorted(e.key for e in valid)
    reasons = {key.decode().removeprefix("u-"): (s.error_class, s.error_message) for key, s in stories(out).items()}
    first_name_class, first_name_reason = reasons.pop("huge_first_name")  # its size depends on the key
    assert first_name_class == "InvalidEventError"
    assert re.fullmatch(r"message of 1,000,\d{3} bytes is larger than the limit of 1,000,000 bytes", first_name_reason)
    assert reasons == {
        "deep_json": ("InvalidEventError", "nesting deeper than 64 levels"),
        "huge_integer": ("InvalidEventError", "a number with more than 100 digits in seq"),
        "huge_integer_in_source_file": (
            "InvalidEventError", "invalid event: source.file: String should have at most 1000 characters"),
        "deep_sequence": ("InvalidEventError", "invalid event: source.sequence: String should have at most 1000 characters"),
        "lone_surrogate": ("InvalidEventError", "invalid event: data.first_name: Value error, holds a lone surrogate (U+D800)"),
        "random_bytes": ("InvalidEventError", "message of 1,048,401 bytes is larger than the limit of 1,000,000 bytes"),
    }
    references = {key for key, story in stories(out).items() if story.is_reference}
    assert references == {b"u-huge_first_name", b"u-random_bytes"}  # too large to dead-letter whole
    assert all(message_size(m) <= request_limit(APP) for m in out)


@pytest.mark.parametrize(
    "error",
    [
        RecursionError("maximum recursion depth exceeded while decoding a JSON array from a unicode string"),
        ValueError("Exceeds the limit (4300 digits) for integer string conversion"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ],
)
async def test_any_error_of_one_event_is_dead_lettered_with_its_class(error: Exception) -> None:
    """The last line behind the event limits: whatever one event's handling raises, it is dead-lettered
    with that error's class and message, and the events around it go on."""

    def handle(event: EventT) -> list[Outgoing]:
        if event.message.value == b"bad":
            raise error
        return [Outgoing(VALIDATED, event.message.key, event.message.value)]

    out = await per_event("validate", DLQ, handle)([event(b"ok", 0, key=b"a"), event(b"bad", 1, key=b"b"), event(b"ok", 2, key=b"c")])

    assert [m.key for m in out if m.topic == VALIDATED] == [b"a", b"c"]
    assert {k: (s.error_class, s.error_message) for k, s in stories(out).items()} == {b"b": (type(error).__name__, str(error))}


async def test_an_output_the_producer_cannot_send_dead_letters_its_event() -> None:
    """An output over the producer's max_request_size is never produced: its event is dead-lettered."""

    def handle(event: EventT) -> list[Outgoing]:
        return [Outgoing(VALIDATED, event.message.key, b"x" * (request_limit(APP) + 1))]

    out = await per_event("validate", DLQ, handle)([event(b"small", 0, key=b"big")])

    assert [m.topic for m in out] == [DLQ]
    story = stories(out)[b"big"]
    assert story.error_class == "OutputTooLargeError"
    assert re.fullmatch(rf"its output to {VALIDATED} would be \d+ bytes, more than the producer sends "
                        r"\(max_request_size 1000000\)", story.error_message)


async def test_a_fault_of_the_worker_leaves_the_batch_unsettled() -> None:
    """A store failure while an event is handled is raised out of the batch (the stage then stops without
    committing) instead of dead-lettering an event that did nothing wrong."""

    def store_fails(event: EventT) -> list[Outgoing]:
        raise WorkerFaultError("table last-known: IO error: No space left on device")

    with pytest.raises(WorkerFaultError):
        await per_event("transform", DLQ, store_fails)([event(b"{}")])


def test_decode_each_names_the_failing_field_without_echoing_the_input() -> None:
    """A validation error becomes InvalidEventError naming the field; the letter keeps the value whole."""
    from schemas.dispatch import Outcome

    decoded, dead = decode_each([event(b'{"record_id": "secret@example.com"}')], "status",
                                lambda e: Outcome.model_validate_json(e.message.value), DLQ)

    (story,) = stories(dead).values()
    assert decoded == [] and story.error_class == "InvalidEventError"
    assert "secret@example.com" not in story.error_message and story.error_message.startswith("invalid event: ")
    assert dead[0].value == b'{"record_id": "secret@example.com"}'


@pytest.mark.parametrize(
    ("error", "trouble"),
    [
        (KafkaConnectionError("Unable to connect"), True),
        (KafkaTimeoutError(), True),
        (NotLeaderForPartitionError(), True),
        (TimeoutError(), True),
        (MessageSizeTooLargeError(), False),
        (WorkerFaultError("table"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_a_stop_the_broker_caused_counts_against_no_message(error: BaseException, trouble: bool) -> None:
    """Unreachable, slow or moving brokers stop a worker through no message's fault; a broker refusing a
    message, a store failing or a bug may well be a message's doing."""
    assert broker_trouble(error) is trouble


def test_recorded_stops_cut_a_batch_into_segments_in_order() -> None:
    """Events with no stop recorded stay together; a suspect is handled alone; one with N stops is given
    up; the order of the batch is kept."""
    batch = [event(b"", offset) for offset in range(7)]
    stops = {2: 1, 3: 3, 6: 2}

    cut = segments(batch, lambda e: stops.get(e.message.offset, 0), give_up_at=3)

    assert [(s.kind, [e.message.offset for e in s.events]) for s in cut] == [
        ("batch", [0, 1]), ("suspect", [2]), ("given_up", [3]), ("batch", [4, 5]), ("suspect", [6]),
    ]
    assert segments(batch[:2], lambda e: 0, give_up_at=3) == [Segment("batch", batch[:2])]
