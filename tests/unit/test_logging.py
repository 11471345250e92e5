from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from pipeline.errors import ConfigError
from pipeline.log_repeats import RepeatLimiter
from pipeline.logging import EMAIL, PHONE, REDACTED, configure_logging, redact_sensitive

PHONES = [
    "+14155550123",
    "+1 415 555 0123",
    "(415) 555-0123",
    "415-555-0123",
    "415.555.0123",
    "+44 20 7946 0958",
    "+33 1 23 45 67 89",
    "+49 30 12345678",
]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def redact(**event: object) -> dict[str, object]:
    return redact_sensitive(None, "info", dict(event))


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("phone", PHONES)
def test_phone_numbers_are_masked_in_text(phone: str) -> None:
    """Every common phone format inside a sentence is replaced by the phone marker."""
    assert redact(event=f"call {phone} today")["event"] == f"call {PHONE} today"


def test_emails_and_secrets_are_masked_in_text() -> None:
    """Email addresses, bearer tokens, Mailchimp keys and key=value secrets are masked by pattern."""
    event = redact(
        event="sent to jane.doe+crm@example.co.uk with Bearer eyJhbGciOi.abc-def",
        url="https://api.example.com/contacts?hapikey=abc123&limit=5",
        note="key 0123456789abcdef0123456789abcdef-us21 and password=hunter2 user=bob",
    )
    assert event == {
        "event": f"sent to {EMAIL} with {REDACTED}",
        "url": f"https://api.example.com/contacts?hapikey={REDACTED}&limit=5",
        "note": f"key {REDACTED} and password={REDACTED} user=bob",
    }


def test_values_under_sensitive_keys_are_masked_whatever_they_hold() -> None:
    """Values under secret, email and phone key names are masked, even when no pattern would match."""
    event = redact(api_key="xyz", access_token="t0k", Authorization="Basic abc", email="not-an-email", flag=True)
    assert event == {
        "api_key": REDACTED,
        "access_token": REDACTED,
        "Authorization": REDACTED,
        "email": REDACTED,
        "flag": True,
    }


def test_nested_dicts_and_lists_are_masked() -> None:
    """Redaction reaches values inside nested dicts, lists and tuples."""
    event = redact(
        payload={"properties": {"email": "a@b.com", "firstname": "Ann"}, "headers": {"password": "p"}},
        recipients=["a@b.com", ("call +14155550123",)],
    )
    assert event == {
        "payload": {"properties": {"email": REDACTED, "firstname": "Ann"}, "headers": {"password": REDACTED}},
        "recipients": [EMAIL, [f"call {PHONE}"]],
    }


def test_record_ids_numbers_and_times_are_untouched() -> None:
    """Record ids, offsets, versions, timestamps, UUIDs and addresses are not mistaken for phones or secrets."""
    event = {
        "event": "batch delivered offset 123456789 at 2026-05-09 07:35:25,123 from 127.0.0.1:19092",
        "record_id": "c-000042",
        "uuid": "3f2a1234-5678-4abc-9def-0123456789ab",
        "version": 1715240000123000,
        "ratio": 0.25,
        "ids": [42, "c-000043"],
        "timestamp": "2026-05-09T07:35:25.123456Z",
        "host": "192.168.100.200",
    }
    assert redact(**event) == event


def test_json_lines_carry_context_and_are_redacted(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Each line is one JSON object with level, logger, UTC timestamp, bound context and masked values."""
    configure_logging("INFO", json=True)
    structlog.contextvars.bind_contextvars(stage="dispatch", record_id="c-000042", provider="hubspot")
    log = structlog.get_logger("agents.dispatch")
    log.info("delivered", outcome="delivered", contact={"email": "a@b.com", "note": "ring 415-555-0123"})
    log.debug("not shown")
    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "delivered"
    assert line["level"] == "info"
    assert line["logger"] == "agents.dispatch"
    assert str(line["timestamp"]).endswith("Z")
    assert (line["stage"], line["record_id"], line["provider"], line["outcome"]) == (
        "dispatch",
        "c-000042",
        "hubspot",
        "delivered",
    )
    assert line["contact"] == {"email": REDACTED, "note": f"ring {PHONE}"}


def test_foreign_stdlib_logs_are_rendered_and_redacted(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """aiokafka/httpx-style stdlib records come out in the same JSON format, message text and traceback masked."""
    configure_logging("INFO", json=True)
    logging.getLogger("httpx").warning("HTTP Request: POST %s %s", "https://x.test/?api_key=s3cr3t", "jo@x.io")
    try:
        raise ValueError("bad input_value='jo@x.io'")
    except ValueError:
        logging.getLogger("aiokafka").exception("send failed for %s", "+1 (415) 555-0123")
    first, second = json_lines(capsys.readouterr().err)
    assert first["logger"] == "httpx"
    assert first["event"] == f"HTTP Request: POST https://x.test/?api_key={REDACTED} {EMAIL}"
    assert second["event"] == f"send failed for {PHONE}"
    assert second["level"] == "error"
    assert "ValueError" in str(second["exception"])
    assert "jo@x.io" not in str(second["exception"])


def test_chatty_foreign_info_lines_are_left_out(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """httpx's line per request and aiokafka's repeated subscription update are not logged at INFO;
    their warnings are."""
    configure_logging("INFO", json=True)
    subscription = logging.getLogger("aiokafka.consumer.subscription_state")
    subscription.info("Updating subscribed topics to: %s", frozenset({"contacts.cdc"}))
    logging.getLogger("httpx").info("HTTP Request: POST https://x.test/ 200")
    subscription.warning("subscription lost")
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group")
    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["subscription lost", "Joined group"]


def test_unknown_level_is_a_config_error() -> None:
    """A misspelt level is reported as a one-line configuration error."""
    with pytest.raises(ConfigError, match="unknown log level"):
        configure_logging("LOUD")


def test_console_lines_are_redacted_too(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal layout goes through the same redaction as JSON."""
    configure_logging("INFO", json=False)
    structlog.get_logger("cli").warning("bounced", to="a@b.com")
    err = capsys.readouterr().err
    assert "bounced" in err and EMAIL in err and "a@b.com" not in err


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limited_json_logging(clock: FakeClock) -> None:
    """The pipeline's logging, JSON, its repeat limiter on a fake clock."""
    configure_logging("INFO", json=True)
    (handler,) = logging.getLogger().handlers
    handler.filters = [RepeatLimiter(10.0, clock)]


def unreachable(node: int) -> None:
    logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", node, "Connect call failed")


def test_a_repeated_library_error_is_one_line_per_interval_with_the_count_held_back(
    restore_logging: None, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error aiokafka repeats on every retry (different arguments, one template) is shown once per
    10 s; the next line shown says how many were held back and over how long."""
    limited_json_logging(clock)
    for step in range(313):
        clock.now = 1000.0 + step * 0.03  # 313 lines over 9.4 s
        unreachable(step % 3)
    clock.now = 1010.5
    unreachable(1)
    first, second = json_lines(capsys.readouterr().err)
    assert first["event"] == "Unable connect to node with id 0: Connect call failed"
    assert "repeated" not in first
    assert second["event"] == "Unable connect to node with id 1: Connect call failed"
    assert (second["repeated"], second["repeated_within_s"], second["level"]) == (312, 10, "error")


def test_distinct_messages_and_loggers_are_limited_apart(
    restore_logging: None, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each logger and template has its own allowance: one flood does not hide another message."""
    limited_json_logging(clock)
    for _ in range(50):
        unreachable(1)
        logging.getLogger("aiokafka").error("Unable to update metadata from %s", [1])
        logging.getLogger("aiokafka.producer.sender").warning("Got error produce response: %s", "refused")
    events = [line["event"] for line in json_lines(capsys.readouterr().err)]
    assert events == [
        "Unable connect to node with id 1: Connect call failed",
        "Unable to update metadata from [1]",
        "Got error produce response: refused",
    ]


def test_info_lines_and_our_own_events_are_never_held_back(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only foreign warnings and errors are limited: a library's INFO lines pass, and so does every
    structlog event of ours, whose fields (a record id) make each one its own."""
    configure_logging("INFO", json=True)
    for n in range(5):
        logging.getLogger("faust").info("Worker ready %s", n)
        structlog.get_logger("agents.dispatch").warning("dead_lettered", record_id=f"c-{n}")
    found = json_lines(capsys.readouterr().err)
    assert len(found) == 10
    assert [line["record_id"] for line in found if line["event"] == "dead_lettered"] == [f"c-{n}" for n in range(5)]


def test_a_message_that_comes_back_later_starts_a_new_interval(clock: FakeClock) -> None:
    """After a quiet interval, a message passes at once and carries no count (nothing was held back)."""
    limiter = RepeatLimiter(10.0, clock)
    record = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "Unable to update metadata from %s", ([1],), None)
    assert limiter.filter(record)
    clock.now += 60
    again = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "Unable to update metadata from %s", ([1],), None)
    assert limiter.filter(again)
    assert not hasattr(again, "repeated")
    assert not limiter.filter(again)


async def test_a_stage_binds_its_name_for_every_line_it_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_stage binds ``stage`` in the agent's task: a line the stage's handler logs without naming
    the stage carries it."""
    import faust
    from faust.types import Message

    from pipeline.kafka import stage_loop
    from pipeline.kafka.stage_loop import run_stage
    from pipeline.kafka.worker_faults import Segment

    app = faust.App("unit-logging")  # its (empty) table registry only: nothing is started

    async def one_batch(stream, batch_max: int, within_s: float, holder=None):  # type: ignore[no-untyped-def]
        message = Message("t", 0, 0, 1.0, 0, [], b"k", b"v", None)
        yield [faust.Event(app, b"k", b"v", [], message)]

    monkeypatch.setattr(stage_loop, "batches", one_batch)

    class NoStops:
        async def read(self) -> None: ...

        def segments(self, events):  # type: ignore[no-untyped-def]
            return [Segment("batch", events)]

    async def handle(events):  # type: ignore[no-untyped-def]
        structlog.get_logger("handler").info("handled", events=len(events))
        return []

    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        await asyncio.create_task(run_stage(app, None, "validate", handle, faults=NoStops(),  # type: ignore[arg-type]
                                            batch_max=1, within_s=0.0))
    (handled,) = [line for line in captured if line["event"] == "handled"]
    assert handled["stage"] == "validate"
