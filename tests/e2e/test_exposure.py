"""A worker's web server seen from outside, and what a second worker on the same host may take.

One pipeline for the module: worker A with default web settings (views open, an API key configured),
worker B with its views closed, one contact delivered. Faust's own views are listed from the installed
Faust (``faust.web.base``), so a view a Faust upgrade adds is checked too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from faust.web import base as faust_web
from mode.utils.imports import symbol_by_name

from pipeline.dev.demo import free_port
from pipeline.dev.local_stack import WorkerProcess, wait_until_consuming
from tests.e2e.conftest import Pipeline, new_pipeline
from tests.e2e.crafted import plain_upsert
from tests.e2e.test_admin import wait_until_held
from tests.kafka_harness import fresh_prefix

pytestmark = pytest.mark.kafka

KEY = "e2e-exposure-key"
WITH_KEY = {"Authorization": f"Bearer {KEY}"}
RECORD = "exp-1"
EMAIL = f"{RECORD}@example.com"  # what plain_upsert gives it
LOCAL_VIEWS = ["/lag", "/lag/page", "/providers", "/metrics"]  # answered by the worker asked
OUR_VIEWS = [*LOCAL_VIEWS, f"/records/{RECORD}"]  # the record's owner answers (it may be either worker)


def faust_views(table: str, key: str) -> list[str]:
    """The path of every view Faust's built-in blueprints define, enabled or not, for one table row."""
    blueprints = [*faust_web.DEFAULT_BLUEPRINTS, *faust_web.PRODUCTION_BLUEPRINTS,
                  *faust_web.DEBUG_BLUEPRINTS, *faust_web.OPTIONAL_BLUEPRINTS]
    return sorted({(prefix + route.uri).format(name=table, key=key)
                   for prefix, blueprint in blueprints for route in symbol_by_name(blueprint).routes})


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP ``port``, as the kernel lists them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                words = [bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, len(address), 8)]  # host order
                found.add(str(ipaddress.ip_address(b"".join(words))))
    return found


@pytest.fixture(scope="module")
async def exposed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pipeline]:
    """Worker A (default web settings, a key), worker B (views closed, same key), one contact delivered."""
    harness = await new_pipeline(kafka_bootstrap, fresh_prefix(), tmp_path_factory.mktemp("exposure"))
    async with AsyncExitStack() as exits:
        try:
            await harness.start(exits, workers=1, env={"CONTACTSYNC_ADMIN__API_KEYS": KEY})
            assert harness.stack is not None
            closed = dataclasses.replace(
                harness.stack, extra_env={**harness.stack.extra_env, "CONTACTSYNC_ADMIN__OPEN_VIEWS": "false"}
            )
            harness.workers.append(
                WorkerProcess(closed, harness.tmp / "data-b", free_port(), harness.tmp / "worker-b.log").start()
            )
            assert await wait_until_consuming(harness.bootstrap, harness.app_id, 2, timeout_s=90), harness.logs()
            await harness.publish([plain_upsert(RECORD)])
            await wait_until_held(harness, "hubspot", {RECORD})
            yield harness
        finally:
            await harness.stop()


def base_url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.web_port}"


async def test_a_worker_with_default_settings_listens_on_loopback_only(exposed: Pipeline) -> None:
    """The kernel's table of listening sockets has worker A's web port on 127.0.0.1 and nowhere else."""
    assert listening_addresses(exposed.workers[0].web_port) == {"127.0.0.1"}


async def test_faust_views_need_a_key_even_with_views_open(exposed: Pipeline) -> None:
    """On worker A (views open) its read views answer without a key, every view of Faust's answers 401
    and holds no contact data; with the key, Faust's table view serves the row it was hiding."""
    worker = base_url(exposed.workers[0])
    async with httpx.AsyncClient(timeout=30) as client:
        ours = {path: (await client.get(worker + path)).status_code for path in LOCAL_VIEWS}
        faust = {path: await client.get(worker + path) for path in faust_views("last-known", RECORD)}
        keyed = await client.get(f"{worker}/table/last-known/{RECORD}/", headers=WITH_KEY)

    assert "/table/last-known/exp-1/" in faust and "/router/" in faust and "/graph/" in faust
    assert ours == dict.fromkeys(LOCAL_VIEWS, 200)
    assert {path: answer.status_code for path, answer in faust.items()} == dict.fromkeys(faust, 401)
    assert not any(EMAIL in answer.text for answer in faust.values())
    assert keyed.status_code == 200 and EMAIL in keyed.text


async def test_closed_views_return_no_contact_data_without_a_key(exposed: Pipeline) -> None:
    """On worker B (views closed) every view, ours and Faust's, answers 401 without a key and no answer
    holds the contact's email."""
    worker = base_url(exposed.workers[1])
    async with httpx.AsyncClient(timeout=30) as client:
        answers = {path: await client.get(worker + path)
                   for path in [*OUR_VIEWS, *faust_views("last-known", RECORD), *faust_views("record-status", RECORD)]}

    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(answers, 401)
    assert not any(EMAIL in answer.text for answer in answers.values())


async def test_a_record_status_is_answered_by_every_worker_with_the_key(exposed: Pipeline) -> None:
    """GET /records/{id} with the key answers the same delivered status from both workers: the one that
    does not hold the record forwards the request, key included, to the one that does."""
    async with httpx.AsyncClient(timeout=30, headers=WITH_KEY) as client:
        for _ in range(100):  # the status stage records the delivery shortly after the provider has it
            answers = [(await client.get(f"{base_url(worker)}/records/{RECORD}")) for worker in exposed.workers]
            if all(answer.status_code != 404 for answer in answers):
                break
            await asyncio.sleep(0.2)

    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    assert answers[0].json() == answers[1].json() and answers[0].json()["providers"]["hubspot"]["state"] == "delivered"


async def test_a_second_worker_on_the_same_data_dir_is_refused_before_joining(exposed: Pipeline) -> None:
    """A worker started on worker A's data dir exits 2 with one line naming the dir and A's pid, and
    the group keeps the same two members."""
    assert exposed.stack is not None
    first = exposed.workers[0]
    members = await wait_until_consuming(exposed.bootstrap, exposed.app_id, 2, timeout_s=30)
    data_dir = exposed.tmp / "data-0"
    log = exposed.tmp / "worker-same-dir.log"

    second = WorkerProcess(exposed.stack, data_dir, free_port(), log).start()
    assert second.process is not None and first.process is not None
    code = second.process.wait(timeout=60)

    assert code == 2 and log.read_text().splitlines() == [
        f"contactsync: data dir {data_dir} is in use by another worker (pid {first.process.pid}); "
        "give each worker its own CONTACTSYNC_DATA_DIR"
    ]
    assert members and await wait_until_consuming(exposed.bootstrap, exposed.app_id, 2, timeout_s=30) == members


async def test_a_second_worker_on_the_same_web_port_is_refused_before_joining(exposed: Pipeline) -> None:
    """A worker started on worker A's web port (with a data dir of its own) exits 2 with one line naming
    the port, and the group keeps the same two members."""
    assert exposed.stack is not None
    port = exposed.workers[0].web_port
    members = await wait_until_consuming(exposed.bootstrap, exposed.app_id, 2, timeout_s=30)
    log = exposed.tmp / "worker-same-port.log"

    second = WorkerProcess(exposed.stack, exposed.tmp / "data-same-port", port, log).start()
    assert second.process is not None
    code = second.process.wait(timeout=60)

    assert code == 2 and log.read_text().splitlines() == [
        f"contactsync: web port {port} on 127.0.0.1 is in use (by another worker?); give each worker its own "
        "CONTACTSYNC_WEB_PORT or --web-port"
    ]
    assert members and await wait_until_consuming(exposed.bootstrap, exposed.app_id, 2, timeout_s=30) == members
