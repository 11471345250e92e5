"""Status-to-error tables: how each adapter classifies an answer (or a network failure) for a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from pipeline.errors import DeliveryError, PermanentError, RetryableError, ThrottledError
from pipeline.providers import Provider
from pipeline.providers.http import retry_after
from pipeline.providers.hubspot import HubSpotMapper, seconds_until_midnight_utc
from pipeline.providers.mailchimp import MailchimpMapper
from pipeline.providers.salesforce import SalesforceMapper
from tests.unit.providers.wire import (
    HUBSPOT,
    MAILCHIMP,
    SALESFORCE,
    Handler,
    answer,
    change,
    hubspot,
    mailchimp,
    raising,
    records,
    salesforce,
    with_token,
)

Row = tuple[int, dict[str, str], Any, type[DeliveryError], float]

ROWS_ANY: list[tuple[str, Handler, type[DeliveryError], float]] = [
    ("timeout", raising(httpx.ReadTimeout("read timed out")), RetryableError, 0.0),
    ("connect error", raising(httpx.ConnectError("connection refused")), RetryableError, 0.0),
    ("bad JSON on 200", lambda request: httpx.Response(200, text="<html>"), PermanentError, 0.0),
]

HUBSPOT_ROWS: list[Row] = [
    (400, {}, {"status": "error", "category": "VALIDATION_ERROR", "message": "bad"}, PermanentError, 0),
    (401, {}, {"status": "error", "category": "INVALID_AUTHENTICATION"}, PermanentError, 0),
    (403, {}, {"status": "error", "category": "MISSING_SCOPES"}, PermanentError, 0),
    (404, {}, {"status": "error", "category": "OBJECT_NOT_FOUND"}, PermanentError, 0),
    (408, {}, None, RetryableError, 0),
    (429, {"Retry-After": "3"}, {"policyName": "TEN_SECONDLY_ROLLING"}, ThrottledError, 3),
    (429, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
     {"policyName": "TEN_SECONDLY_ROLLING", "errorType": "RATE_LIMIT"}, ThrottledError, 10),
    (429, {}, {"policyName": "TEN_SECONDLY_ROLLING"}, ThrottledError, 10),
    (500, {}, {"status": "error", "category": "INTERNAL_ERROR"}, RetryableError, 0),
    (502, {}, None, RetryableError, 0),
    (503, {"Retry-After": "30"}, None, RetryableError, 30),
]

SALESFORCE_ROWS: list[Row] = [
    (400, {}, [{"message": "bad JSON", "errorCode": "JSON_PARSER_ERROR"}], PermanentError, 0),
    (401, {}, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
     RetryableError, 0),
    (403, {}, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
     ThrottledError, 60),
    (403, {}, [{"message": "no access", "errorCode": "INSUFFICIENT_ACCESS"}], PermanentError, 0),
    (404, {}, {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"},
     PermanentError, 0),
    (408, {}, None, RetryableError, 0),
    (500, {}, [{"message": "oops", "errorCode": "UNKNOWN_EXCEPTION"}], RetryableError, 0),
    (502, {}, None, RetryableError, 0),
    (503, {}, None, RetryableError, 0),
]

MAILCHIMP_PROBLEM = {"type": "https://mailchimp.com/developer/marketing/docs/errors/",
                     "instance": "995c5cb0", "detail": "details"}
MAILCHIMP_ROWS: list[Row] = [
    (400, {}, {**MAILCHIMP_PROBLEM, "title": "Invalid Resource", "status": 400}, PermanentError, 0),
    (401, {}, {**MAILCHIMP_PROBLEM, "title": "API Key Invalid", "status": 401}, PermanentError, 0),
    (403, {}, {**MAILCHIMP_PROBLEM, "title": "Forbidden", "status": 403}, PermanentError, 0),
    (404, {}, {**MAILCHIMP_PROBLEM, "title": "Resource Not Found", "status": 404}, PermanentError, 0),
    (408, {}, None, RetryableError, 0),
    (429, {}, {**MAILCHIMP_PROBLEM, "title": "Too Many Requests", "status": 429}, ThrottledError, 1),
    (429, {"Retry-After": "5"}, {**MAILCHIMP_PROBLEM, "title": "Too Many Requests"}, ThrottledError, 5),
    (500, {}, {**MAILCHIMP_PROBLEM, "title": "Internal Server Error"}, RetryableError, 0),
    (502, {}, None, RetryableError, 0),
    (503, {}, None, RetryableError, 0),
]


def _row_handler(status: int, headers: dict[str, str], body: Any) -> Handler:
    return lambda request: answer(status, body, headers)


def _hubspot(handler: Handler) -> tuple[Provider, list[Any]]:
    provider, _ = hubspot(handler)
    mapper = HubSpotMapper(HUBSPOT)
    return provider, records(mapper, change("r1", email="a@example.com"), change("r2"))


def _salesforce(handler: Handler) -> tuple[Provider, list[Any]]:
    provider, _ = salesforce(with_token(handler))
    mapper = SalesforceMapper(SALESFORCE)
    return provider, records(mapper, change("r1", contact_type="lead"), change("r2", contact_type="lead"))


def _mailchimp(handler: Handler) -> tuple[Provider, list[Any]]:
    provider, _ = mailchimp(handler)
    mapper = MailchimpMapper(MAILCHIMP)
    return provider, records(mapper, change("r1", email="a@example.com"), change("r2", email="b@x.org"))


BUILDERS = {"hubspot": _hubspot, "salesforce": _salesforce, "mailchimp": _mailchimp}


async def _assert_every_record(
    build: Any, handler: Handler, cls: type[DeliveryError], wait: float
) -> list[DeliveryError]:
    provider, batch = build(handler)
    try:
        results = await provider.deliver(batch)
    finally:
        await provider.aclose()
    assert [r.record_id for r in results] == [r.record_id for r in batch]
    errors = [r.error for r in results]
    assert all(type(e) is cls for e in errors), errors
    assert all(e is errors[0] for e in errors), "a whole-call failure is one error for every record"
    if isinstance(errors[0], RetryableError):
        assert errors[0].retry_after == pytest.approx(wait)
    return [e for e in errors if e is not None]


@pytest.mark.parametrize(("status", "headers", "body", "cls", "wait"), HUBSPOT_ROWS)
async def test_hubspot_status_table(status: int, headers: dict[str, str], body: Any,
                                    cls: type[DeliveryError], wait: float) -> None:
    """A HubSpot answer for the whole batch becomes the expected error class and wait per record."""
    errors = await _assert_every_record(_hubspot, _row_handler(status, headers, body), cls, wait)
    assert errors[0].status == status


@pytest.mark.parametrize(("status", "headers", "body", "cls", "wait"), SALESFORCE_ROWS)
async def test_salesforce_status_table(status: int, headers: dict[str, str], body: Any,
                                       cls: type[DeliveryError], wait: float) -> None:
    """A Salesforce answer for the whole call becomes the expected error class and wait per record."""
    errors = await _assert_every_record(_salesforce, _row_handler(status, headers, body), cls, wait)
    assert errors[0].status == status


@pytest.mark.parametrize(("status", "headers", "body", "cls", "wait"), MAILCHIMP_ROWS)
async def test_mailchimp_status_table(status: int, headers: dict[str, str], body: Any,
                                      cls: type[DeliveryError], wait: float) -> None:
    """A Mailchimp answer for the whole batch becomes the expected error class and wait per record."""
    errors = await _assert_every_record(_mailchimp, _row_handler(status, headers, body), cls, wait)
    assert errors[0].status == status


@pytest.mark.parametrize("provider", sorted(BUILDERS))
@pytest.mark.parametrize(("case", "handler", "cls", "wait"), ROWS_ANY, ids=[r[0] for r in ROWS_ANY])
async def test_network_failures_and_garbage(provider: str, case: str, handler: Handler,
                                            cls: type[DeliveryError], wait: float) -> None:
    """Timeouts and connection errors are retryable and a garbled 200 is permanent, never raised."""
    await _assert_every_record(BUILDERS[provider], handler, cls, wait)


async def test_hubspot_daily_limit_waits_until_midnight_utc() -> None:
    """A HubSpot DAILY 429 without Retry-After is throttled until the next midnight UTC."""
    body = {"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY",
            "message": "You have reached your daily limit."}
    expected = seconds_until_midnight_utc(datetime.now(UTC))
    provider, batch = _hubspot(_row_handler(429, {}, body))
    results = await provider.deliver(batch)
    await provider.aclose()
    error = results[0].error
    assert isinstance(error, ThrottledError) and error.code == "DAILY"
    assert expected - 5 <= error.retry_after <= expected


async def test_salesforce_request_limit_wait_is_configurable() -> None:
    """Salesforce REQUEST_LIMIT_EXCEEDED waits the configured time, as it sends no Retry-After."""
    body = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    provider, _ = salesforce(with_token(_row_handler(403, {}, body)), limit_retry_after_s=900.0)
    results = await provider.deliver(records(SalesforceMapper(SALESFORCE), change("r1")))
    await provider.aclose()
    assert isinstance(results[0].error, ThrottledError)
    assert results[0].error.retry_after == 900.0


def test_seconds_until_midnight_utc() -> None:
    """The DAILY wait counts to midnight UTC, also from a time given in another zone."""
    assert seconds_until_midnight_utc(datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)) == 30.0
    eastern = datetime(2026, 3, 1, 18, 0, tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    assert seconds_until_midnight_utc(eastern) == 6 * 3600


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    """Retry-After is read as delta-seconds or as an HTTP date; garbage counts as absent."""
    request = httpx.Request("GET", "https://example.test/")
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert retry_after(httpx.Response(429, headers={"Retry-After": "7"}, request=request)) == 7.0
    assert 100 <= (retry_after(httpx.Response(429, headers={"Retry-After": later})) or 0) <= 120
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(429)) is None
