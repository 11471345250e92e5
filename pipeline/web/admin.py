"""Admin endpoints: the run-time rules and provider settings (an API key is needed, see ``pipeline.web.access``).

- ``GET /admin/rules``: the rules in force and the stored document (``null``: the environment's rules);
- ``PUT /admin/rules``: store rules: the fields given, the environment's for the others;
- ``DELETE /admin/rules``: remove the stored rules, the environment's apply again;
- ``GET /admin/providers`` and ``GET /admin/providers/{name}``: each enabled provider's settings in force
  (no credentials) and its stored tuning;
- ``PATCH /admin/providers/{name}``: change some of ``base_url``, ``batch_size``, ``rate_per_second``,
  ``burst``, ``max_in_flight``, ``timeout_s`` (merged into the stored tuning);
- ``DELETE /admin/providers/{name}``: remove its tuning.

A change is written to its compacted topic and the answer comes once this worker has applied it
(``"applied": true``); every other worker applies it as it reads the topic, within about a second.
An invalid document is answered 422 with each field and why; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from faust.web import Request, Response, View
from pydantic import ValidationError

from pipeline.app import app, context
from pipeline.runtime_config import RULES_KEY, field_problems, rules_document, tunable_view, tuned
from schemas.config_documents import ProviderTuning

APPLY_TIMEOUT_S = 10.0

log = structlog.get_logger(__name__)


def rules_view() -> dict[str, Any]:
    stored = context.runtime.stored_rules
    return {"rules": context.runtime.rules.model_dump(mode="json"),
            "stored": stored.model_dump(mode="json") if stored is not None else None}


def provider_view(name: str) -> dict[str, Any]:
    stored = context.runtime.tuning.get(name)
    return {"settings": tunable_view(context.lanes[name].settings), "stored": stored.changed() if stored else None}


async def store(view: View, topic: str, key: bytes, value: bytes | None,
                document: Callable[[], dict[str, Any]]) -> Response:
    """Write one document (None: a tombstone), wait until this worker applied it, answer what is in force."""
    sent = await app.producer.send_and_wait(topic, key, value, None, None, None)
    applied = await context.runtime.wait_applied(sent.topic, sent.partition, sent.offset, APPLY_TIMEOUT_S)
    log.info("runtime config stored", topic=topic, key=key.decode(), removed=value is None, applied=applied)
    return view.json({**document(), "applied": applied})


def invalid(view: View, what: str, exc: ValidationError) -> Response:
    return view.json({"error": f"invalid {what}", "problems": field_problems(exc)}, status=422)


@app.page("/admin/rules")
class AdminRules(View):
    async def get(self, request: Request) -> Response:
        return self.json(rules_view())

    async def put(self, request: Request) -> Response:
        try:
            rules = rules_document(await request.read(), context.settings.routing)
        except ValidationError as exc:
            return invalid(self, "rules", exc)
        rules_value = rules.model_dump_json().encode()
        return await store(self, context.topics.catalog.config_rules, RULES_KEY, rules_value, rules_view)

    async def delete(self, request: Request) -> Response:
        return await store(self, context.topics.catalog.config_rules, RULES_KEY, None, rules_view)


@app.page("/admin/providers")
async def admin_providers(view: View, request: Request) -> Response:
    return view.json({name: provider_view(name) for name in context.lanes})


@app.page("/admin/providers/{name}")
class AdminProvider(View):
    async def get(self, request: Request, name: str) -> Response:
        if name not in context.lanes:
            return self.not_enabled(name)
        return self.json(provider_view(name))

    async def patch(self, request: Request, name: str) -> Response:
        if name not in context.lanes:
            return self.not_enabled(name)
        try:
            update = ProviderTuning.model_validate_json(await request.read())
            tuning = context.runtime.tuning.get(name, ProviderTuning()).updated(update)
            tuned(name, context.settings.providers.enabled()[name], tuning)
        except ValidationError as exc:
            return invalid(self, f"settings for {name}", exc)
        value = tuning.model_dump_json(exclude_none=True).encode()
        topic = context.topics.catalog.config_providers
        return await store(self, topic, name.encode(), value, lambda: provider_view(name))

    async def delete(self, request: Request, name: str) -> Response:
        if name not in context.lanes:
            return self.not_enabled(name)
        topic = context.topics.catalog.config_providers
        return await store(self, topic, name.encode(), None, lambda: provider_view(name))

    def not_enabled(self, name: str) -> Response:
        return self.json({"error": f"provider {name!r} is not enabled on this worker", "enabled": list(context.lanes)},
                         status=404)
