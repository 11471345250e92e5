"""Mailchimp's member requests, sent one by one when few, else together as batch operations.

The adapter asks for one request at a time (:meth:`MemberRequests.request`, which answers like
:meth:`ProviderClient.request`: a 2xx response, else a classified ``DeliveryError``): a member's
move, guard ``GET`` or archive, or a batch subscribe of up to 500 members (counted as one). The
requests asked for within ``GATHER_S`` of each other, across the concurrent deliveries of one
adapter, go out together: as one ``POST /batches`` when they are worth a batch
(:func:`batch_threshold`: the lane would take longer to send them one by one than a batch takes to
come back), else as direct requests. Where no batch can come of them (:func:`gathers`: a lane of
thousands of requests a second) they go at once, without the wait. A batch runs later on
Mailchimp's side: one poller per adapter reads ``GET /batches`` (only the id, status and result URL
of each batch) for every batch in flight, and
once its batch is ``finished`` fetches the results from ``response_body_url``, a gzipped tar of
JSON files, each an array of ``{"status_code", "operation_id", "response"}``. That URL is storage,
not the API: it is fetched with a plain client, without the API key and outside the lane's rate.
Each operation's own status and body then answer its request exactly as a direct answer would; an
operation with no result, and every operation of a batch not finished within
``settings.batch_timeout_s``, fails retryably (it may still run later: every member request the
adapter makes may be made again).

A poll asks for one page of 1,000 batches (the most a page holds). Mailchimp does not document the
list's order; the simulator lists the newest first, and so, it is assumed here, does Mailchimp. If
it lists the oldest first, an account that keeps more than 1,000 batches would hide ours: they
would time out and their records be retried (unverified against the real API).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import tarfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import TypeAdapter

from pipeline.errors import DeliveryError, RetryableError
from pipeline.providers.http import Answer, ProviderClient, parse
from pipeline.settings import MailchimpSettings

GATHER_S = 0.005  # how long requests asked for together wait for each other before they go
_LIST_FIELDS = "batches.id,batches.status,batches.response_body_url"
_NEWEST = "1000"


class _Batch(Answer):
    id: str
    status: str = ""
    response_body_url: str = ""


class _Batches(Answer):
    batches: list[_Batch] = []


class _Result(Answer):
    status_code: int
    operation_id: str
    response: str = ""


_BATCH = TypeAdapter(_Batch)
_BATCHES = TypeAdapter(_Batches)
_RESULTS = TypeAdapter(list[_Result])


def batch_threshold(settings: MailchimpSettings) -> int:
    """Fewest member requests sent as one batch. A batch costs two of the lane's requests (its POST
    and a poll) and at least ``batch_poll_s`` of waiting, where n direct requests cost n ÷
    ``rate_per_second`` of the lane: batching pays past ``rate_per_second × batch_poll_s + 2``, and
    never below ``batch_operations_min``. On an unlimited lane nothing waits for a batch."""
    worth_it = math.floor(settings.rate_per_second * settings.batch_poll_s) + 3
    return max(settings.batch_operations_min, worth_it)


def gathers(settings: MailchimpSettings) -> bool:
    """Whether member requests wait ``GATHER_S`` for each other: only where a batch may come of them.
    One dispatch asks for about as many member requests as it holds records (a move or an archive's
    guard and ``DELETE`` each, a subscribe per 500); past twice that, the threshold is out of reach
    (a lane of thousands of requests a second, the latency benchmark's), and waiting only delays."""
    return batch_threshold(settings) <= 2 * settings.batch_size * settings.max_in_flight


@dataclass
class _Asked:
    """One member request waiting for its answer."""

    method: str
    path: str
    params: Mapping[str, str] | None
    body: Any
    answer: asyncio.Future[httpx.Response] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def operation(self, operation_id: str) -> dict[str, Any]:
        operation: dict[str, Any] = {"method": self.method, "path": self.path, "operation_id": operation_id}
        if self.params:
            operation["params"] = dict(self.params)
        if self.body is not None:
            operation["body"] = json.dumps(self.body)
        return operation

    def settle(self, outcome: httpx.Response | DeliveryError) -> None:
        if self.answer.done():
            return
        if isinstance(outcome, DeliveryError):
            self.answer.set_exception(outcome)
        else:
            self.answer.set_result(outcome)


@dataclass
class _Running:
    """A batch in flight: its requests by operation id, and when it stops being waited for."""

    asked: dict[str, _Asked]
    deadline: float


class MemberRequests:
    """The member requests of one adapter: direct when few, else batch operations (module docstring)."""

    def __init__(
        self,
        settings: MailchimpSettings,
        http: ProviderClient,
        storage: httpx.AsyncClient,
        classify: Callable[[httpx.Response], DeliveryError],
    ) -> None:
        self._settings = settings
        self._batch_from = batch_threshold(settings)
        self._gathers = gathers(settings)
        self._http = http
        self._storage = storage
        self._classify = classify
        self._gathering: list[_Asked] = []
        self._running: dict[str, _Running] = {}
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One member request (``path`` under the API's base URL); answers like ``ProviderClient.request``."""
        if not self._gathers:
            return await self._http.request(method, path, json=json, params=params)
        asked = _Asked(method, path, params, json)
        if not self._gathering:
            self._spawn(self._send_gathered())
        self._gathering.append(asked)
        return await asked.answer

    async def aclose(self) -> None:
        for task in [*self._tasks, *filter(None, [self._poller])]:
            task.cancel()
        self._fail_running(RetryableError("the Mailchimp adapter closed before the answer came", code="closed"))
        for asked in self._gathering:
            asked.settle(RetryableError("the Mailchimp adapter closed before the request went", code="closed"))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_gathered(self) -> None:
        await asyncio.sleep(GATHER_S)
        gathered, self._gathering = self._gathering, []
        try:
            if len(gathered) < self._batch_from:
                await asyncio.gather(*(self._direct(asked) for asked in gathered))
            else:
                await self._start_batch(gathered)
        except BaseException:  # cancelled, or a bug: no request may wait for an answer that cannot come
            for asked in gathered:
                asked.settle(RetryableError("the Mailchimp request was not sent", code="not_sent"))
            raise

    async def _direct(self, asked: _Asked) -> None:
        try:
            asked.settle(await self._http.request(asked.method, asked.path, json=asked.body, params=asked.params))
        except DeliveryError as error:
            asked.settle(error)

    async def _start_batch(self, gathered: list[_Asked]) -> None:
        asked = {str(number): one for number, one in enumerate(gathered)}
        body = {"operations": [one.operation(operation_id) for operation_id, one in asked.items()]}
        try:
            batch = parse(await self._http.request("POST", "/batches", json=body), _BATCH)
        except DeliveryError as error:
            for one in gathered:
                one.settle(error)
            return
        self._running[batch.id] = _Running(asked, time.monotonic() + self._settings.batch_timeout_s)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        """Read the status of every batch in flight until none is left; settle each as it finishes
        or times out."""
        try:
            while self._running:
                await asyncio.sleep(self._settings.batch_poll_s)
                done = [(batch, self._running.pop(batch.id)) for batch in await self._finished()]
                await asyncio.gather(*(self._collect(batch, running) for batch, running in done))
                self._expire(time.monotonic())
        finally:  # cancelled, or a bug: nothing may wait for a poller that is gone
            self._fail_running(RetryableError("Mailchimp batch status no longer read", code="batch_unfinished"))

    async def _finished(self) -> list[_Batch]:
        """The batches in flight that Mailchimp lists as finished (none when the poll fails: the next
        one asks again, until the deadline)."""
        try:
            listed = await self._http.request("GET", "/batches", params={"fields": _LIST_FIELDS, "count": _NEWEST})
            batches = parse(listed, _BATCHES).batches
        except DeliveryError:
            return []
        return [batch for batch in batches if batch.status == "finished" and batch.id in self._running]

    def _fail_running(self, error: RetryableError) -> None:
        for running in self._running.values():
            for asked in running.asked.values():
                asked.settle(error)
        self._running.clear()

    def _expire(self, now: float) -> None:
        for batch_id, running in list(self._running.items()):
            if now >= running.deadline:
                del self._running[batch_id]
                message = f"Mailchimp batch {batch_id} did not finish in {self._settings.batch_timeout_s:g} s"
                error = RetryableError(message, code="batch_unfinished")
                for asked in running.asked.values():
                    asked.settle(error)

    async def _collect(self, batch: _Batch, running: _Running) -> None:
        """Answer each request of a finished batch with its operation's result."""
        try:
            results = await self._results(batch.response_body_url)
        except DeliveryError as error:
            results, failure = {}, error
        else:
            failure = RetryableError(f"Mailchimp batch {batch.id} has no result for an operation", code="no_result")
        for operation_id, asked in running.asked.items():
            result = results.get(operation_id)
            asked.settle(failure if result is None else self._answer(asked, result))

    async def _results(self, url: str) -> dict[str, _Result]:
        """The results archive at ``url`` (storage: no API key, not the lane), by operation id."""
        try:
            response = await self._storage.get(url)
        except httpx.HTTPError as exc:
            raise RetryableError(f"Mailchimp batch results unreachable: {type(exc).__name__}", code="results") from exc
        if not response.is_success:
            raise RetryableError(f"Mailchimp batch results: {response.status_code}", code="results")
        try:
            return {result.operation_id: result for result in _unpacked(response.content)}
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise RetryableError("Mailchimp batch results unreadable", code="results") from exc

    def _answer(self, asked: _Asked, result: _Result) -> httpx.Response | DeliveryError:
        """An operation's result as the answer its direct request would have had."""
        request = self._http.build_request(asked.method, asked.path, params=asked.params)
        response = httpx.Response(result.status_code, content=result.response.encode(), request=request)
        return response if response.is_success else self._classify(response)


def _unpacked(archive: bytes) -> list[_Result]:
    """Every result in a results archive: each JSON file in it holds an array of them."""
    results: list[_Result] = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            content = tar.extractfile(member) if member.isfile() and member.name.endswith(".json") else None
            if content is not None:
                results += _RESULTS.validate_json(content.read())
    return results
