"""The ``/_sim/`` endpoints every simulator serves beside its API, for tests and the demo.

    GET  /_sim/records                     {"provider", "records": {record_id: view}}
    GET  /_sim/records/{record_id}         {"provider", "record": view}  (404 if never written)
    GET  /_sim/records/{record_id}/history {"provider", "record_id", "history": [write, ...]}
    GET  /_sim/requests?after=SEQ          {"provider", "requests": [request, ...]}
    POST /_sim/records/{record_id}/edit    {"fields": {...}}: a person's edit at the platform, in its field
                                           names; it notifies like any change (404 if no live record)
    GET  /_sim/webhooks                    {"provider", "queued", "delivered", "attempts", "given_up", "pending"}
    POST /_sim/reset                       {"provider", "reset": true}
    GET  /_sim/config                      the provider's config
    PUT  /_sim/config                      merge a partial config; answers the new one (400 if invalid)

Served at the root and under the API prefix (Mailchimp's ``/3.0``), so ``{base_url}/_sim/...``
works for every simulator. No auth, limits, latency or faults apply here, and these requests are not logged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

if TYPE_CHECKING:
    from pipeline.dev.simulators.base import ProviderSimulator


def add_inspection_routes(router: web.UrlDispatcher, simulator: ProviderSimulator[Any], prefix: str = "") -> None:
    provider = simulator.name

    async def records(request: web.Request) -> web.Response:
        return web.json_response({"provider": provider, "records": simulator.store.current_records()})

    async def record(request: web.Request) -> web.Response:
        view = simulator.store.current_record(request.match_info["record_id"])
        if view is None:
            return web.json_response({"provider": provider, "error": "no such record"}, status=404)
        return web.json_response({"provider": provider, "record": view})

    async def history(request: web.Request) -> web.Response:
        record_id = request.match_info["record_id"]
        writes = simulator.store.history(record_id)
        return web.json_response({"provider": provider, "record_id": record_id, "history": writes})

    async def requests(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        return web.json_response({"provider": provider, "requests": simulator.log.entries(after_seq=after)})

    async def edit(request: web.Request) -> web.Response:
        body = await request.json()
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict) or not fields:
            return web.json_response({"error": 'the body must be {"fields": {name: value, ...}}'}, status=400)
        records = simulator.store.scan(simulator.store.record_id_field, request.match_info["record_id"])
        live = [record for record in records if not record.archived]
        if not live:
            return web.json_response({"provider": provider, "error": "no such live record"}, status=404)
        record = live[0]
        simulator.store.write(record.native_id, fields, at=time.time(), request_seq=0, object_type=record.object_type)
        view = simulator.store.current_record(request.match_info["record_id"])
        return web.json_response({"provider": provider, "record": view})

    async def webhooks(request: web.Request) -> web.Response:
        return web.json_response({"provider": provider, **simulator.notifier.counts.as_json()})

    async def reset(request: web.Request) -> web.Response:
        simulator.reset()
        return web.json_response({"provider": provider, "reset": True})

    async def get_config(request: web.Request) -> web.Response:
        return web.json_response(simulator.config.model_dump(mode="json"))

    async def put_config(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise TypeError("the body must be a JSON object")
            config = simulator.reconfigure(changes)
        except ValidationError as exc:
            return web.json_response({"error": "invalid config", "problems": _problems(exc)}, status=400)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": "invalid config", "problems": [str(exc)]}, status=400)
        return web.json_response(config.model_dump(mode="json"))

    router.add_get(f"{prefix}/_sim/records", records)
    router.add_get(f"{prefix}/_sim/records/{{record_id}}", record)
    router.add_get(f"{prefix}/_sim/records/{{record_id}}/history", history)
    router.add_get(f"{prefix}/_sim/requests", requests)
    router.add_post(f"{prefix}/_sim/records/{{record_id}}/edit", edit)
    router.add_get(f"{prefix}/_sim/webhooks", webhooks)
    router.add_post(f"{prefix}/_sim/reset", reset)
    router.add_get(f"{prefix}/_sim/config", get_config)
    router.add_put(f"{prefix}/_sim/config", put_config)


def _problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()]
