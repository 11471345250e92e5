"""What the three simulators share: the aiohttp server, and the path every API request takes.

Arrival (logged, counted in flight; concurrency limit, auth, rate windows and the fault draw
are decided here) -> latency -> the refusal or injected fault, else the provider's handler ->
limit headers on the answer. Everything under ``/_sim/`` (served both at the root and under the API
prefix, so ``{base_url}/_sim/...`` always works) skips that path (see ``inspection``), and so does
what a provider serves outside its API (``outside_api``).

A provider subclass names its routes and supplies the platform's answers: error bodies
(``error_response``), the throttle body (``throttle_response``), auth, windows and headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar

from aiohttp import web

from pipeline.dev.simulators.config import BaseSimConfig, merged
from pipeline.dev.simulators.faults import FaultInjector, RequestFault
from pipeline.dev.simulators.inspection import add_inspection_routes
from pipeline.dev.simulators.notifier import Notification, WebhookNotifier
from pipeline.dev.simulators.request_log import LoggedRequest, RecordRef, RequestLog
from pipeline.dev.simulators.store import Operation, RecordStore, StoredRecord

ConfigT = TypeVar("ConfigT", bound=BaseSimConfig)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOG_ENTRY = web.RequestKey("sim_log_entry", LoggedRequest)
logger = logging.getLogger(__name__)


class RejectedRequest(Exception):
    """A whole request refused; the provider renders it as the platform's error body."""

    def __init__(self, status: int, message: str, *, code: str = "", extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}


class ProviderSimulator(ABC, Generic[ConfigT]):
    """One simulated platform on one port."""

    name: ClassVar[str]
    api_prefix: ClassVar[str] = ""

    def __init__(self, config: ConfigT, store: RecordStore) -> None:
        self.config = config
        self.store = store
        self.log = RequestLog(config.request_log_size)
        self.faults = FaultInjector(config.faults, config.latency)
        self.in_flight = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self.notifier = WebhookNotifier(self.webhook_headers)
        store.listeners.append(self._notify)

    # --- what a provider supplies -------------------------------------------------------------

    @abstractmethod
    def add_api_routes(self, router: web.UrlDispatcher) -> None: ...

    @abstractmethod
    def authenticate(self, request: web.Request) -> RejectedRequest | None: ...

    @abstractmethod
    def admit(self, now: float) -> web.Response | None:
        """Count the request in the platform's windows, or the platform's refusal."""

    @abstractmethod
    def throttle_response(self) -> web.Response:
        """The platform's answer when its rate limit is hit."""

    @abstractmethod
    def error_response(self, rejection: RejectedRequest) -> web.Response: ...

    def limit_headers(self, now: float) -> dict[str, str]:
        return {}

    def max_in_flight(self) -> int | None:
        return None

    def is_exempt(self, request: web.Request) -> bool:
        """Requests that skip auth, limits and faults (the Salesforce token endpoint)."""
        return False

    def outside_api(self, request: web.Request) -> bool:
        """Requests that are not the platform's API (a download from its storage): not logged,
        not counted, no auth, no faults."""
        return False

    def notifications(self, record: StoredRecord, operation: Operation, changed: dict[str, Any]) -> list[Notification]:
        """What the platform sends its webhook subscribers about one write (none by default)."""
        return []

    def webhook_headers(self, url: str, body: bytes) -> dict[str, str]:
        """Headers of one attempt to send a notification (a signature)."""
        return {}

    def _notify(self, record: StoredRecord, operation: Operation, changed: dict[str, Any]) -> None:
        if self.config.webhook.url is not None:
            self.notifier.notify(self.config.webhook, self.notifications(record, operation, changed))

    def on_reconfigure(self) -> None: ...

    def on_reset(self) -> None: ...

    # --- lifecycle and control ----------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: a free port); returns and keeps ``base_url``."""
        app = web.Application(middlewares=[self._api_middleware], client_max_size=32 * 1024**2)
        for prefix in {"", self.api_prefix}:
            add_inspection_routes(app.router, self, prefix)
        self.add_api_routes(app.router)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}{self.api_prefix}"
        return self.base_url

    async def stop(self) -> None:
        await self.notifier.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reconfigure(self, changes: dict[str, Any]) -> ConfigT:
        """Merge ``changes`` into the config (pydantic ValidationError if invalid) and apply it."""
        self.config = merged(self.config, changes)
        self.faults.reconfigure(self.config.faults, self.config.latency)
        self.on_reconfigure()
        return self.config

    def reset(self) -> None:
        """Forget every record, request and window count; seeded fault streams start again."""
        self.store.reset()
        self.log.reset(self.config.request_log_size)
        self.faults.reconfigure(self.config.faults, self.config.latency)
        self.notifier.reset()
        self.on_reset()

    # --- helpers for handlers -----------------------------------------------------------------

    @staticmethod
    def note_records(request: web.Request, refs: list[RecordRef]) -> None:
        """Name the records a request carried, for ``/_sim/requests``."""
        request[LOG_ENTRY].records = refs

    @staticmethod
    def note_partial_failure(request: web.Request) -> None:
        """Mark a 2xx answer that reports some records as failed."""
        request[LOG_ENTRY].outcome = "partial"

    @staticmethod
    def request_seq(request: web.Request) -> int:
        return request[LOG_ENTRY].seq

    def ref(self, record: StoredRecord) -> RecordRef:
        """The log's reference to a stored record (for requests that name records by platform id)."""
        return RecordRef(self.store.record_id_of(record), self.store.version_of(record))

    @staticmethod
    async def json_body(request: web.Request) -> Any:
        try:
            return json.loads(await request.read() or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RejectedRequest(400, f"Invalid input JSON: {exc}", code="INVALID_JSON") from None

    # --- the request path ---------------------------------------------------------------------

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(("/_sim/", f"{self.api_prefix}/_sim/")) or self.outside_api(request):
            return await handler(request)
        entry = self.log.open(request.method, request.path, request.query_string, time.time())
        request[LOG_ENTRY] = entry
        self.in_flight += 1
        try:
            response = await self._answer(request, handler, entry)
        except asyncio.CancelledError:
            entry.outcome = "dropped" if entry.outcome == "fault:timeout" else "cancelled"
            raise
        finally:
            self.in_flight -= 1
        response.headers.update(self.limit_headers(time.monotonic()))
        entry.status, entry.answered_at = response.status, time.time()
        if entry.outcome == "pending":
            entry.outcome = "ok" if response.status < 400 else "rejected"
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, entry: LoggedRequest
    ) -> web.StreamResponse:
        exempt = self.is_exempt(request)
        refusal = None if exempt else self._refusal_at_arrival(request, entry)
        # Drawn at arrival for every counted request, refused or not, so that a seeded stream
        # does not shift with timing-dependent refusals or latency.
        fault = None if exempt else self.faults.request_fault()
        await asyncio.sleep(self.faults.delay_s())
        if refusal is not None or fault is not None:
            # The handler may not run: name the records the refused request carried here.
            entry.records = _carried(await _body_or_none(request), self.store)
        if refusal is not None:
            return refusal
        if fault is not None:
            return await self._injected_fault(request, handler, entry, fault)
        return await self._handled(request, handler)

    async def _handled(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except RejectedRequest as rejection:
            return self.error_response(rejection)
        except web.HTTPException as exc:
            return self.error_response(RejectedRequest(exc.status, exc.reason, code="ROUTE"))
        except Exception:
            logger.exception("simulator %s failed on %s %s", self.name, request.method, request.path)
            return self.error_response(RejectedRequest(500, "Internal server error", code="SERVER_ERROR"))

    def _refusal_at_arrival(self, request: web.Request, entry: LoggedRequest) -> web.Response | None:
        limit = self.max_in_flight()
        if limit is not None and self.in_flight > limit:
            entry.outcome = "throttled:connections"
            return self.throttle_response()
        rejection = self.authenticate(request)
        if rejection is not None:
            entry.outcome = "unauthorized"
            return self.error_response(rejection)
        refusal = self.admit(time.monotonic())
        if refusal is not None:
            entry.outcome = "throttled"
        return refusal

    async def _injected_fault(
        self, request: web.Request, handler: Handler, entry: LoggedRequest, fault: RequestFault
    ) -> web.Response:
        entry.outcome = f"fault:{fault}"
        faults = self.config.faults
        if fault == "server_error":
            status = faults.server_error_status
            return self.error_response(RejectedRequest(status, "Injected server error", code="SERVER_ERROR"))
        if fault == "throttle":
            return self.throttle_response()
        if faults.timeout_mode == "drop_after_write":
            await self._handled(request, handler)  # the platform does the work; only its answer is lost
            entry.outcome = f"fault:{fault}"  # whatever the handler noted about its answer
        await asyncio.sleep(faults.timeout_hold_s)
        if faults.timeout_mode != "gateway_timeout":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return self.error_response(RejectedRequest(504, "Gateway Timeout", code="SERVER_ERROR"))


async def _body_or_none(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        return None


def _carried(body: Any, store: RecordStore) -> list[RecordRef]:
    """Every record a request body carries, found by the record id field wherever it sits."""
    found: list[RecordRef] = []
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if store.record_id_field in node:
                found.append(RecordRef.of(node[store.record_id_field], node.get(store.version_field)))
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found
