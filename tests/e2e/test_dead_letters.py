"""`contactsync dlq` and record retries on dead letters a running pipeline made: HubSpot's simulator
refuses every record at first (three dispatch letters), and one event is not JSON (a validate letter).
One pipeline for the module; each test works on its own records, so their order does not matter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from pipeline.dev.simulators.config import FaultConfig, HubSpotSimConfig, SimulatorsConfig
from pipeline.ops.dlq.letters import Letter, read_letters
from schemas.dead_letter import Replayed
from schemas.headers import HEADER_PREFIX, from_headers
from tests.cli_runner import run_cli
from tests.e2e.conftest import Pipeline, new_pipeline
from tests.e2e.crafted import plain_upsert, poison
from tests.kafka_harness import fresh_prefix

pytestmark = pytest.mark.kafka

REFUSING_HUBSPOT = SimulatorsConfig(
    hubspot=HubSpotSimConfig(faults=FaultConfig(partial_failure=1.0, partial_failure_kind="permanent"))
)
REPLAYED_HEADER = HEADER_PREFIX + "replayed_from"
ADMIN_KEY = "dlq-admin-key"  # a record retry is an admin action
EVENTS = [plain_upsert("dl-hub-1"), plain_upsert("dl-hub-2"), plain_upsert("dl-hub-3"),
          plain_upsert("dl-lead", contact_type="lead"), poison("dl-poison")]


@pytest.fixture(scope="module")
async def letters_made(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pipeline]:
    """A worker that has dead-lettered dl-hub-1, -2 and -3 at dispatch and dl-poison at validate."""
    harness = await new_pipeline(kafka_bootstrap, fresh_prefix(), tmp_path_factory.mktemp("dlq"))
    async with AsyncExitStack() as exits:
        try:
            await harness.start(exits, REFUSING_HUBSPOT, env={"CONTACTSYNC_ADMIN__API_KEYS": ADMIN_KEY})
            await harness.publish(EVENTS)
            deadline = time.monotonic() + 60
            while len(await read_letters(kafka_bootstrap, harness.catalog)) < 4:
                assert time.monotonic() < deadline, harness.logs()
                await asyncio.sleep(0.5)
            yield harness
        finally:
            await harness.stop()


def _keys(stdout: str) -> list[str]:
    """The KEY column of `dlq list` (the last word of each row)."""
    return sorted(line.split()[-1] for line in stdout.splitlines()[1:-1])


def test_list_shows_each_letter_and_the_filters_narrow_it(letters_made: Pipeline) -> None:
    """list prints a line per letter with stage, provider, error class and key; --stage, --provider,
    --error-class, --key, --since and --until select exactly the matching letters."""
    env = letters_made.cli_env()

    def listed(*filters: str) -> list[str]:
        done = run_cli(env, "dlq", "list", "--all", *filters)
        assert done.returncode == 0, done.stderr
        return _keys(done.stdout)

    everything = run_cli(env, "dlq", "list", "--all")
    rows = {line.split()[-1]: line.split() for line in everything.stdout.splitlines()[1:-1]}
    assert rows["dl-hub-1"][3:6] == ["dispatch", "hubspot", "PermanentError"]
    assert rows["dl-poison"][3:6] == ["validate", "-", "InvalidEventError"]
    assert listed("--stage", "dispatch") == listed("--provider", "hubspot") == ["dl-hub-1", "dl-hub-2", "dl-hub-3"]
    assert listed("--error-class", "InvalidEventError") == ["dl-poison"]
    assert listed("--key", "dl-hub-2", "--since", "10m") == ["dl-hub-2"]
    assert listed("--until", "10m") == [] and listed("--since", "2999-01-01T00:00") == []


def test_show_prints_the_story_headers_and_the_value_as_pretty_json(letters_made: Pipeline) -> None:
    """show gives a letter's dead-letter headers, its key, and its JSON value indented."""
    shown = run_cli(letters_made.cli_env(), "dlq", "show", "--all", "--key", "dl-hub-1")

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("letter ") and "  contactsync.stage: dispatch" in lines
    assert "  contactsync.provider: hubspot" in lines and "key: dl-hub-1" in lines
    assert '  "record_id": "dl-hub-1",' in lines


async def test_replay_redelivers_exactly_the_selected_letter_once(letters_made: Pipeline) -> None:
    """After the fault is fixed, replaying dl-hub-1's letter sends it back to the dispatch topic byte for
    byte (with its origin in a header) and HubSpot then holds it; dl-hub-2 stays undelivered; replaying
    the same selection again sends nothing."""
    harness, env = letters_made, letters_made.cli_env()
    hubspot = await _hubspot_fixed(harness)
    async with httpx.AsyncClient(timeout=30) as client:

        first = run_cli(env, "dlq", "replay", "--provider", "hubspot", "--key", "dl-hub-1")
        second = run_cli(env, "dlq", "replay", "--provider", "hubspot", "--key", "dl-hub-1")
        held = await _wait_for_record(client, f"{hubspot}/_sim/records/dl-hub-1")
        other = await client.get(f"{hubspot}/_sim/records/dl-hub-2")

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "replayed 1 letter"
    assert second.stdout.splitlines()[-1] == "replayed 0 letters (1 already handled)"
    assert held == 200 and other.status_code == 404
    letter = _letter(await read_letters(harness.bootstrap, harness.catalog), "dl-hub-1")
    dispatched = await harness.messages(harness.catalog.dispatch("hubspot"))
    replayed = [m for m in dispatched if any(name == REPLAYED_HEADER for name, _ in m.headers or ())]
    assert [(m.key, m.value) for m in replayed] == [(letter.key, letter.value)]
    assert from_headers(Replayed, replayed[0].headers).replayed_from == f"{harness.catalog.dlq}:{letter.ref}"


def test_purge_marks_letters_handled_so_list_and_replay_pass_them_over(letters_made: Pipeline) -> None:
    """purge needs a selection; once dl-poison is purged, list hides it (and says so), --all shows it as
    purged, and a replay of its stage sends nothing."""
    env = letters_made.cli_env()

    unselected = run_cli(env, "dlq", "purge")
    purged = run_cli(env, "dlq", "purge", "--stage", "validate")
    listed = run_cli(env, "dlq", "list", "--stage", "validate")
    with_handled = run_cli(env, "dlq", "list", "--stage", "validate", "--all")
    replayed = run_cli(env, "dlq", "replay", "--stage", "validate")

    assert unselected.returncode == 2 and unselected.stderr.startswith("contactsync: purge needs a selection")
    assert purged.stdout.startswith("purged 1 letter (")
    assert listed.stdout == "0 letters (1 handled not shown: --all)\n"
    row = with_handled.stdout.splitlines()[1].split()
    assert (row[6], row[-1]) == ("purged", "dl-poison")
    assert replayed.stdout == "replayed 0 letters (1 already handled)\n"


def _letter(letters: list[Letter], key: str) -> Letter:
    return next(letter for letter in letters if letter.key == key.encode())


async def _wait_for_record(client: httpx.AsyncClient, url: str, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while (status := (await client.get(url)).status_code) != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return status


async def test_retrying_a_record_sends_its_newest_change_again_and_it_is_delivered(letters_made: Pipeline) -> None:
    """POST /records/dl-hub-3/retry (with the API key), once HubSpot accepts again, sends the record's CDC
    event through the pipeline again and its status turns delivered; a record without a change event
    answers 404."""
    harness = letters_made
    hubspot = await _hubspot_fixed(harness)
    worker = f"http://127.0.0.1:{harness.workers[0].web_port}"
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        retried = await client.post(f"{worker}/records/dl-hub-3/retry")
        unknown = await client.post(f"{worker}/records/no-such-record/retry")
        deadline = time.monotonic() + 30
        while (state := await _hubspot_state(client, f"{worker}/records/dl-hub-3")) != "delivered":
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.5)
        held = await client.get(f"{hubspot}/_sim/records/dl-hub-3")

    assert retried.status_code == 202 and retried.json()["resent"]["topic"] == harness.catalog.cdc
    assert unknown.status_code == 404 and held.status_code == 200


async def _hubspot_state(client: httpx.AsyncClient, url: str) -> str:
    return str((await client.get(url)).json()["providers"]["hubspot"]["state"])


async def _hubspot_fixed(harness: Pipeline) -> str:
    """Turn the HubSpot simulator's refusals off; its base URL."""
    assert harness.sims is not None
    hubspot = harness.sims.base_urls()["hubspot"]
    async with httpx.AsyncClient(timeout=30) as client:
        fixed = await client.put(f"{hubspot}/_sim/config", json={"faults": {"partial_failure": 0.0}})
    assert fixed.status_code == 200, fixed.text
    return hubspot
