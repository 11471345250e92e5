"""A provider request that gets no answer, over real sockets: retried, and named for what went wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from pipeline.errors import DeliveryError, PermanentError, RetryableError
from pipeline.providers.http import ProviderClient, classify_status
from pipeline.settings import ProviderSettings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(30)


async def _answer_400(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')
    await writer.drain()


async def _client(port: int) -> ProviderClient:
    settings = ProviderSettings(base_url=f"http://127.0.0.1:{port}", batch_size=1, timeout_s=0.5)

    def classify(response: httpx.Response) -> DeliveryError:
        return classify_status(response, message=f"answered {response.status_code}", code="http", throttle_after=1)

    return ProviderClient(settings, base_url=settings.base_url, classify=classify)


async def _request_to(handler: Handler) -> Exception:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = await _client(port)
    try:
        await client.request("POST", "/contacts", json={"a": 1})
    except Exception as error:  # noqa: BLE001 - the test looks at what came out
        return error
    finally:
        await client.aclose()
        server.close()
    raise AssertionError("the request did not fail")


async def test_a_connection_closed_without_an_answer_is_retried_and_named() -> None:
    error = await _request_to(_hang_up)
    assert isinstance(error, RetryableError)
    assert (error.code, str(error)) == ("transport", "POST /contacts failed: ServerDisconnectedError")


async def test_an_answer_that_never_comes_times_out_and_is_retried() -> None:
    error = await _request_to(_never_answer)
    assert isinstance(error, RetryableError)
    assert (error.code, str(error)) == ("timeout", "POST /contacts timed out")


async def test_a_refused_connection_is_retried_and_named() -> None:
    server = await asyncio.start_server(_answer_400, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = await _client(port)
    try:
        with pytest.raises(RetryableError, match="POST /contacts failed: ClientConnectorError"):
            await client.request("POST", "/contacts", json={"a": 1})
    finally:
        await client.aclose()


async def test_an_answer_is_classified_by_the_adapters_table() -> None:
    error = await _request_to(_answer_400)
    assert isinstance(error, PermanentError)
    assert error.status == 400
