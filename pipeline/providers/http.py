"""HTTP plumbing every adapter shares: one client with a concurrency cap, and answers turned into errors.

Requests are httpx's, sent through aiohttp (:func:`http_transport`, ``httpx_aiohttp``): the same
requests and answers at about a third of the CPU per request of httpx's own transport (httpcore and
anyio), which made most of the HTTP share of a worker's CPU.

An adapter supplies its own ``classify(response) -> DeliveryError`` (its one status-and-body table,
which falls back on :func:`classify_status`); :meth:`ProviderClient.request` returns successful
answers and raises everything else as a :class:`~pipeline.errors.DeliveryError`, so no httpx
exception leaves this package.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from pipeline.errors import DeliveryError, PermanentError, RetryableError, ThrottledError
from pipeline.settings import ProviderSettings

T = TypeVar("T")
Classifier = Callable[[httpx.Response], DeliveryError]

_MESSAGE_LIMIT = 500


class Answer(BaseModel):
    """Base of the models an adapter reads answers into: unknown keys are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context (httpx's default: certifi's CA bundle) for every adapter's client; a context
    of its own per client loads the bundle again, 0.8 MB each."""
    return httpx.create_ssl_context()


def http_transport() -> httpx.AsyncBaseTransport:
    """Where a provider's requests go: aiohttp, with the shared TLS context."""
    return _AiohttpTransport(verify=_tls_context())


class _AiohttpTransport(AiohttpTransport):
    """``httpx_aiohttp``'s transport; an aiohttp error it leaves as it is (a malformed answer) is
    raised as httpx's ``TransportError`` too, so a caller catches httpx's errors alone."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(f"{type(exc).__name__}: {exc}") from exc


class ProviderClient:
    """One ``httpx.AsyncClient`` for one adapter; at most ``settings.max_in_flight`` requests at once.

    This is the provider's one in-flight cap, whatever transport is injected: requests beyond it wait
    here (not in httpx's connection pool, whose wait ends in a pool timeout), so at most that many
    connections are open (Mailchimp refuses an 11th)."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        base_url: str,
        classify: Classifier,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url, auth=auth, headers=headers, timeout=settings.timeout_s,
            transport=transport or http_transport(),
        )
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._classify = classify

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; return a 2xx answer, raise a classified ``DeliveryError`` otherwise."""
        async with self._slots:
            try:
                response = await self._client.request(
                    method, url, json=json, params=params, data=data, headers=headers
                )
            except httpx.HTTPError as exc:
                raise _unanswered(method, url, exc) from exc
        if response.is_success:
            return response
        raise self._classify(response)

    def build_request(self, method: str, url: str, *, params: Mapping[str, str] | None = None) -> httpx.Request:
        """The request ``request`` would send (not sent): what an answer that came another way answers."""
        return self._client.build_request(method, url, params=params)

    async def aclose(self) -> None:
        await self._client.aclose()


def _unanswered(method: str, url: str, exc: httpx.HTTPError) -> RetryableError:
    """A request that got no answer, retried, named after what went wrong: the aiohttp error under
    the httpx one, whose class ``httpx_aiohttp`` picks loosely (a closed connection becomes a
    ``ConnectTimeout``)."""
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    if isinstance(cause, (httpx.TimeoutException, TimeoutError)):
        return RetryableError(f"{method} {_path(url)} timed out", code="timeout")
    return RetryableError(f"{method} {_path(url)} failed: {type(cause).__name__}", code="transport")


def classify_status(
    response: httpx.Response, *, message: str, code: str, throttle_after: float
) -> DeliveryError:
    """The table every provider shares, applied to an answer (its Retry-After header included)."""
    return error_for_status(
        response.status_code,
        message=message,
        code=code,
        wait=retry_after(response),
        throttle_after=throttle_after,
    )


def error_for_status(
    status: int | None,
    *,
    message: str,
    code: str,
    wait: float | None = None,
    throttle_after: float = 0.0,
) -> DeliveryError:
    """429 throttles, 408 and 5xx retry, any other status (or none given) is permanent.

    ``wait`` is what the provider asked for (Retry-After); ``throttle_after`` is the wait of a 429
    that asked for none.
    """
    message = clip(message)
    if status == 429:
        after = throttle_after if wait is None else wait
        return ThrottledError(message, status=status, code=code, retry_after=after)
    if status is not None and (status == 408 or status >= 500):
        return RetryableError(message, status=status, code=code, retry_after=wait or 0.0)
    return PermanentError(message, status=status, code=code)


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds or an HTTP date), None when absent or invalid."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def parse(response: httpx.Response, shape: TypeAdapter[T]) -> T:
    """A success body validated into ``shape``; an unparseable answer is a ``PermanentError``."""
    try:
        return shape.validate_json(response.content)
    except ValidationError as exc:
        request = response.request
        message = f"unparseable answer to {request.method} {request.url.path}"
        raise PermanentError(message, status=response.status_code, code="unparseable") from exc


def error_body(response: httpx.Response, shape: TypeAdapter[T], default: T) -> T:
    """An error body validated into ``shape``, or ``default`` when it has another form."""
    try:
        return shape.validate_json(response.content)
    except ValidationError:
        return default


def clip(message: str) -> str:
    """An error message cut to a length that fits a log line and a Kafka header."""
    return message[:_MESSAGE_LIMIT]


def _path(url: str) -> str:
    return httpx.URL(url).path
