"""Webhook notifications of a simulator, sent as its platform sends them: every change of a record
(a person's edit through ``/_sim/records/{id}/edit``, and the pipeline's own writes) is POSTed to the
configured URL, and sent again after each retry delay while the answer is not 2xx.

The simulator turns a change into notifications (``ProviderSimulator.notifications``) and signs each
attempt (``webhook_headers``: a HubSpot signature carries the time it was made). Counts are served
at ``GET /_sim/webhooks``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pipeline.dev.simulators.config import WebhookSimConfig


@dataclass(frozen=True)
class Notification:
    body: bytes
    content_type: str


@dataclass
class NotifierCounts:
    queued: int = 0
    delivered: int = 0  # answered 2xx
    attempts: int = 0
    given_up: int = 0  # every retry delay used up

    def as_json(self) -> dict[str, int]:
        return {**self.__dict__, "pending": self.queued - self.delivered - self.given_up}


class WebhookNotifier:
    """A queue of notifications and the tasks that send them (started on the first one)."""

    def __init__(self, headers: Callable[[str, bytes], dict[str, str]]) -> None:
        self._headers = headers
        self._queue: asyncio.Queue[tuple[WebhookSimConfig, Notification]] = asyncio.Queue()
        self._senders: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.counts = NotifierCounts()

    def notify(self, config: WebhookSimConfig, notifications: list[Notification]) -> None:
        if config.url is None or not notifications:
            return
        if not self._senders:
            self._client = httpx.AsyncClient(timeout=10.0)
            self._senders = [asyncio.create_task(self._send_each()) for _ in range(config.senders)]
        for notification in notifications:
            self.counts.queued += 1
            self._queue.put_nowait((config, notification))

    async def _send_each(self) -> None:
        while True:
            config, notification = await self._queue.get()
            if await self._send(config, notification):
                self.counts.delivered += 1
            else:
                self.counts.given_up += 1

    async def _send(self, config: WebhookSimConfig, notification: Notification) -> bool:
        assert self._client is not None and config.url is not None
        for delay in (0.0, *config.retry_delays_s):
            await asyncio.sleep(delay)
            self.counts.attempts += 1
            headers = {"Content-Type": notification.content_type, **self._headers(config.url, notification.body)}
            with contextlib.suppress(httpx.HTTPError):
                response = await self._client.post(config.url, content=notification.body, headers=headers)
                if response.is_success:
                    return True
        return False

    def reset(self) -> None:
        self.counts = NotifierCounts()

    async def stop(self) -> None:
        for task in self._senders:
            task.cancel()
        for task in self._senders:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._senders = []
        if self._client is not None:
            await self._client.aclose()
