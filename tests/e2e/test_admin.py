"""Run-time rules and provider settings on a running pipeline: two workers with an API key and their
read-only views closed, changed through the admin endpoints and `contactsync admin`, never restarted.
One pipeline for the module; each test puts back what it changed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pipeline.dev.cdc_generator import GeneratedEvent
from pipeline.settings import HubSpotSettings
from tests.cli_runner import run_cli
from tests.e2e.conftest import Pipeline, new_pipeline
from tests.e2e.crafted import plain_upsert
from tests.e2e.test_delivery import sim_requests
from tests.kafka_harness import fresh_prefix

pytestmark = pytest.mark.kafka

KEY = "e2e-admin-key"
WITH_KEY = {"Authorization": f"Bearer {KEY}"}
WRONG_KEY = {"Authorization": "Bearer not-the-key"}
ENV = {"CONTACTSYNC_ADMIN__API_KEYS": f"{KEY},another-key", "CONTACTSYNC_ADMIN__OPEN_VIEWS": "false"}


@pytest.fixture(scope="module")
async def admin_pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pipeline]:
    """Two workers with API keys and closed views, the simulators, nothing published yet."""
    harness = await new_pipeline(kafka_bootstrap, fresh_prefix(), tmp_path_factory.mktemp("admin"))
    async with AsyncExitStack() as exits:
        try:
            await harness.start(exits, workers=2, env=ENV)
            yield harness
        finally:
            await harness.stop()


def url(harness: Pipeline, worker: int = 0) -> str:
    return f"http://127.0.0.1:{harness.workers[worker].web_port}"


def admin_cli(harness: Pipeline, *args: str) -> Any:
    """`contactsync admin ...` against worker 0; its JSON answer."""
    done = run_cli(harness.cli_env(), "admin", *args, "--url", url(harness))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def on_every_worker(harness: Pipeline, path: str, holds: Callable[[Any], bool], timeout_s: float = 15) -> list[Any]:
    """GET ``path`` (with the key) from each worker until ``holds`` on every answer; the answers."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30, headers=WITH_KEY) as client:
        while True:
            answers = [(await client.get(url(harness, w) + path)).json() for w in range(len(harness.workers))]
            if all(holds(answer) for answer in answers) or time.monotonic() > deadline:
                return answers
            await asyncio.sleep(0.3)


async def wait_until_held(harness: Pipeline, provider: str, record_ids: set[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not record_ids <= set((await harness.held())[provider]):
        assert time.monotonic() < deadline, (provider, record_ids, harness.logs())
        await asyncio.sleep(0.5)


async def record_state(harness: Pipeline, record_id: str, provider: str, timeout_s: float = 60) -> dict[str, Any]:
    """The record's status row at ``provider`` (GET /records/{id} with the key), once there is one."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30, headers=WITH_KEY) as client:
        while True:
            answer = await client.get(f"{url(harness)}/records/{record_id}")
            row = answer.json().get("providers", {}).get(provider) if answer.status_code == 200 else None
            if row is not None:
                return dict(row)
            assert time.monotonic() < deadline, (record_id, provider, harness.logs())
            await asyncio.sleep(0.5)


def pids(harness: Pipeline) -> list[int]:
    return [worker.process.pid for worker in harness.workers if worker.process is not None and worker.running]


async def test_admin_endpoints_need_a_valid_key_and_closed_views_ask_for_one(admin_pipeline: Pipeline) -> None:
    """Admin endpoints answer 401 without a key and 403 with a wrong one, and store nothing; the closed
    read-only views answer 401 without a key and serve with it."""
    base = url(admin_pipeline)
    async with httpx.AsyncClient(timeout=30) as client:
        admin = {
            (method, path, kind): (await client.request(method, base + path, headers=headers, json=body)).status_code
            for method, path, body in [("GET", "/admin/rules", None), ("PUT", "/admin/rules", {"required_fields": []}),
                                       ("PATCH", "/admin/providers/hubspot", {"rate_per_second": 1})]
            for kind, headers in [("none", {}), ("wrong", WRONG_KEY)]
        }
        views = {path: (await client.get(base + path)).status_code
                 for path in ["/lag", "/providers", "/metrics", "/records/adm-none"]}
        with_key = {path: (await client.get(base + path, headers=WITH_KEY)).status_code
                    for path in ["/lag", "/providers", "/metrics", "/records/adm-none", "/admin/providers"]}
        refused = await client.get(base + "/admin/rules")

    assert {status for (_, _, kind), status in admin.items() if kind == "none"} == {401}
    assert {status for (_, _, kind), status in admin.items() if kind == "wrong"} == {403}
    assert refused.headers["WWW-Authenticate"].startswith("Bearer") and "API key" in refused.json()["error"]
    assert set(views.values()) == {401}
    assert with_key == {"/lag": 200, "/providers": 200, "/metrics": 200, "/records/adm-none": 404, "/admin/providers": 200}
    assert admin_cli(admin_pipeline, "rules", "show")["stored"] is None
    assert admin_cli(admin_pipeline, "providers", "show", "hubspot")["stored"] is None


async def test_rule_change_applies_to_the_next_event_without_a_restart(admin_pipeline: Pipeline, tmp_path: Path) -> None:
    """Customers go to HubSpot; after `admin rules set` routes them to Salesforce and requires a phone,
    the next customer lands at Salesforce, not HubSpot, and one without a phone is skipped by the rule,
    on the same worker processes."""
    harness = admin_pipeline
    before = pids(harness)
    await harness.publish([plain_upsert("adm-before")])
    await wait_until_held(harness, "hubspot", {"adm-before"})
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"by_contact_type": {"customer": ["salesforce"]}, "required_fields": ["email", "phone"]}))
    try:
        answer = admin_cli(harness, "rules", "set", "--file", str(rules))
        await on_every_worker(harness, "/admin/rules", lambda a: a["stored"] is not None)
        await harness.publish([plain_upsert("adm-after", phone="+1 415 555 0100"), plain_upsert("adm-no-phone")])
        await wait_until_held(harness, "salesforce", {"adm-after"})
        skipped = await record_state(harness, "adm-no-phone", "salesforce")
        held = await harness.held()
    finally:
        admin_cli(harness, "rules", "reset")

    assert answer["applied"] and answer["rules"]["by_contact_type"] == {"customer": ["salesforce"]}
    assert answer["rules"]["sticky"] == ["mailchimp"]  # not in the file: the environment's
    assert "adm-after" not in held["hubspot"] and "adm-no-phone" not in held["salesforce"]
    assert skipped["state"] == "skipped_by_rule" and "required:phone" in skipped["last_error"]
    assert pids(harness) == before and len(before) == 2


async def test_invalid_rules_and_settings_are_refused_naming_the_field_and_why(admin_pipeline: Pipeline, tmp_path: Path) -> None:
    """A rule naming an unknown provider and a setting beyond HubSpot's bounds answer 422 with each field
    and why, the commands say it in one line, and nothing is stored."""
    harness = admin_pipeline
    async with httpx.AsyncClient(timeout=30, headers=WITH_KEY) as client:
        rules = await client.put(f"{url(harness)}/admin/rules",
                                 json={"by_contact_type": {"lead": ["hubsopt"]}, "required_fields": ["phne"]})
        setting = await client.patch(f"{url(harness)}/admin/providers/hubspot", json={"batch_size": 500, "rate_per_second": -1})
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("subscribed_to: [mailchimp, pipedrive]\n")
    env = harness.cli_env()
    cli_rules = run_cli(env, "admin", "rules", "set", "--file", str(bad_file), "--url", url(harness))
    cli_rate = run_cli(env, "admin", "providers", "set", "hubspot", "--rate-per-second", "0", "--url", url(harness))

    assert rules.status_code == 422 and setting.status_code == 422
    assert {p["field"] for p in rules.json()["problems"]} == {"by_contact_type.lead.0", "required_fields.0"}
    assert {p["field"]: p["message"] for p in setting.json()["problems"]} == {
        "batch_size": "Input should be less than or equal to 100", "rate_per_second": "Input should be greater than 0"}
    for done, field in ((cli_rules, "subscribed_to.1: unknown provider 'pipedrive'"), (cli_rate, "rate_per_second")):
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and field in done.stderr, done.stderr
    assert admin_cli(harness, "rules", "show")["stored"] is None
    assert admin_cli(harness, "providers", "show", "hubspot")["stored"] is None


@pytest.mark.parametrize(
    ("path", "document", "field", "why"),
    [
        ("/admin/rules", {"default_phone_region": "ZZ"}, "default_phone_region", "not a region phonenumbers knows"),
        ("/admin/providers/hubspot", {"base_url": "not-a-url"}, "base_url", "not an http:// or https:// URL"),
        ("/admin/providers/hubspot", {"base_url": "file:///etc/passwd"}, "base_url", "not an http:// or https:// URL"),
        ("/admin/providers/salesforce", {"timeout_s": 1e308}, "timeout_s", "less than or equal to 300"),
        ("/admin/providers/mailchimp", {"rate_per_second": 1e6}, "rate_per_second", "less than or equal to 10000"),
    ],
)
async def test_the_settings_rules_hold_for_the_admin_endpoints(
    admin_pipeline: Pipeline, path: str, document: dict[str, object], field: str, why: str
) -> None:
    """A phone region phonenumbers does not know, an endpoint that is not http(s), and a timeout or rate
    past its bound are refused with 422 naming the field, as they are in the environment; nothing is stored."""
    async with httpx.AsyncClient(timeout=30, headers=WITH_KEY) as client:
        method = client.put if path == "/admin/rules" else client.patch
        answer = await method(url(admin_pipeline) + path, json=document)
        stored = (await client.get(url(admin_pipeline) + path)).json()["stored"]

    assert answer.status_code == 422, answer.text
    assert [p["field"] for p in answer.json()["problems"]] == [field] and why in answer.json()["problems"][0]["message"]
    assert stored is None


async def test_rate_limit_change_applies_to_the_next_batch(admin_pipeline: Pipeline) -> None:
    """After `admin providers set hubspot --rate-per-second 2 --burst 2 --batch-size 1`, both workers' GET
    /providers show the new limit, and HubSpot receives the next records one per request, never more
    than 2 + 2·T requests in any T seconds, for both workers together."""
    harness = admin_pipeline
    await on_every_worker(harness, "/admin/rules", lambda a: a["stored"] is None)  # the previous test's reset
    seen = max((request["seq"] for request in await sim_requests(harness, "hubspot")), default=0)
    events: list[GeneratedEvent] = [plain_upsert(f"adm-rate-{n}") for n in range(8)]
    try:
        answer = admin_cli(harness, "providers", "set", "hubspot", "--rate-per-second", "2", "--burst", "2",
                           "--batch-size", "1")
        views = await on_every_worker(harness, "/providers", lambda v: v["hubspot"]["limit"]["rate_per_second"] == 2)
        await harness.publish(events)
        await wait_until_held(harness, "hubspot", {event.record_id for event in events})
        requests = [r for r in await sim_requests(harness, "hubspot") if r["seq"] > seen]
    finally:
        reset = admin_cli(harness, "providers", "reset", "hubspot")

    assert answer["applied"] and answer["stored"] == {"rate_per_second": 2.0, "burst": 2, "batch_size": 1}
    assert [view["hubspot"]["limit"] for view in views] == [{"rate_per_second": 2.0, "burst": 2, "batch_size": 1,
                                                            "max_in_flight": 4}] * 2
    assert len(requests) >= len(events) and {r["record_count"] for r in requests} == {1}
    times = sorted(r["received_at"] for r in requests)
    for first in range(len(times)):
        for last in range(first, len(times)):
            assert last - first + 1 <= 2 + 2 * (times[last] - times[first]) + 1, times  # +1: the buckets' edges
    assert times[-1] - times[0] >= (len(times) - 2) / 2 - 0.5
    assert reset["stored"] is None and reset["settings"]["rate_per_second"] == HubSpotSettings().rate_per_second
