"""The operations views and commands against a running pipeline: two workers, the simulators, and
changes this module publishes (one pipeline for the whole module, started once)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.dev.cdc_generator import GeneratedEvent, generate_events
from pipeline.settings import ProvidersSettings
from schemas.dispatch import Outcome
from tests.cli_runner import run_cli
from tests.e2e.conftest import Pipeline, new_pipeline
from tests.e2e.crafted import plain_upsert
from tests.kafka_harness import fresh_prefix

pytestmark = pytest.mark.kafka

# To HubSpot (customer) and Mailchimp, without its phone, which is not a phone number.
DELIVERED = plain_upsert("ops-delivered", subscribed=True, phone="call me")
SKIPPED = plain_upsert("ops-skipped", do_not_sync=True, phone="12")  # stopped by the do_not_sync rule
NOT_A_PHONE = {"field": "phone", "reason": "not a phone number (default region US)"}


@dataclass(frozen=True)
class Running:
    harness: Pipeline
    generated: list[GeneratedEvent]

    def url(self, worker: int = 0) -> str:
        return f"http://127.0.0.1:{self.harness.workers[worker].web_port}"


@pytest.fixture(scope="module")
async def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """Two workers that have settled generated changes (poison included) and the two crafted records."""
    harness = await new_pipeline(kafka_bootstrap, fresh_prefix(), tmp_path_factory.mktemp("ops"))
    async with AsyncExitStack() as exits:
        try:
            await harness.start(exits, workers=2)
            generated = list(generate_events(300, records=80, seed=3, invalid_ratio=0.05))
            await harness.publish([*generated, DELIVERED, SKIPPED])
            verdict = await harness.settle(generated)
            assert (verdict.lost, verdict.stale) == ([], []), harness.logs()
            yield Running(harness, generated)
        finally:
            await harness.stop()


async def get_json(url: str, *, until: Callable[[Any], bool] = bool, timeout_s: float = 30) -> tuple[int, Any]:
    """GET ``url``, again until ``until(answer's JSON)`` holds (for at most ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            answer = await client.get(url)
            if until(answer.json()) or time.monotonic() > deadline:
                return answer.status_code, answer.json()
            await asyncio.sleep(0.5)


def has_provider(name: str) -> Callable[[Any], bool]:
    return lambda document: name in document.get("providers", {})


async def test_record_status_is_served_by_any_worker_with_delivered_and_skipped_states(running: Running) -> None:
    """GET /records/{id} answers the same on both workers (routed to the owner): delivered at HubSpot
    and Mailchimp for one record, skipped_by_rule with the rule for the other, each with the phone
    it dropped, 404 for an unknown id."""
    path = "/records/ops-delivered"
    _, delivered = await get_json(running.url(0) + path, until=has_provider("mailchimp"))
    _, via_other = await get_json(running.url(1) + path)
    _, skipped = await get_json(running.url(1) + "/records/ops-skipped", until=has_provider("hubspot"))
    missing, _ = await get_json(running.url(0) + "/records/no-such-record")

    assert delivered == via_other
    assert {name: (row["state"], row["version"]) for name, row in delivered["providers"].items()} == {
        "hubspot": ("delivered", DELIVERED.version), "mailchimp": ("delivered", DELIVERED.version),
    }
    assert all(row["provider_id"] for row in delivered["providers"].values())
    assert [row["dropped_fields"] for row in delivered["providers"].values()] == [[NOT_A_PHONE]] * 2
    hubspot = skipped["providers"]["hubspot"]
    assert (hubspot["state"], hubspot["version"]) == ("skipped_by_rule", SKIPPED.version)
    assert "do_not_sync" in hubspot["last_error"] and missing == 404


async def test_status_command_reads_the_changelog_or_asks_a_worker(running: Running) -> None:
    """`contactsync status ID` finds the record's newest row in the compacted changelog without a worker,
    gives the same with --url, prints a table with the field the pipeline dropped and why, and exits 1
    with one line for an unknown record."""
    _, from_worker = await get_json(running.url(1) + "/records/ops-delivered", until=has_provider("mailchimp"))
    env = running.harness.cli_env()

    from_changelog = run_cli(env, "status", "ops-delivered", "--json")
    asked = run_cli(env, "status", "ops-delivered", "--json", "--url", running.url(0))
    table = run_cli(env, "status", "ops-skipped")
    unknown = run_cli(env, "status", "no-such-record")

    assert from_changelog.returncode == 0, from_changelog.stderr
    assert json.loads(from_changelog.stdout) == from_worker == json.loads(asked.stdout)
    assert table.stdout.splitlines()[0] == "record ops-skipped"
    assert table.stdout.splitlines()[2].split()[:3] == ["hubspot", "skipped_by_rule", str(SKIPPED.version)]
    assert table.stdout.splitlines()[-1] == "phone dropped from the contact: not a possible number (default region US)"
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1


async def test_worker_serves_the_group_lag_as_json_and_as_a_page(running: Running) -> None:
    """A worker's /lag reports every stage caught up, the validate stage having committed every published
    CDC message, and /lag/page is an HTML page with the stage table and the chart."""
    published = len(running.generated) + 2
    _, lag = await get_json(running.url(1) + "/lag", until=lambda report: report["lag"] == 0)
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(running.url(0) + "/lag/page")

    validate = next(stage for stage in lag["stages"] if stage["stage"] == "validate")
    assert lag["lag"] == 0 and (validate["committed"], validate["end"]) == (published, published)
    assert lag["group"] == running.harness.app_id
    assert page.headers["content-type"].startswith("text/html")
    assert "<td>dispatch-hubspot</td>" in page.text and "<svg" in page.text


async def test_providers_view_shows_limits_shares_and_calls_of_each_worker(running: Running) -> None:
    """GET /providers gives every provider's configured limits on each worker, shares of the two workers
    that add up to the whole limit, and calls made with nothing throttled and every breaker closed."""
    views = [(await get_json(running.url(worker) + "/providers"))[1] for worker in (0, 1)]

    for name in ("hubspot", "salesforce", "mailchimp"):
        limit = getattr(ProvidersSettings(), name).rate_per_second
        lanes = [view[name] for view in views]
        assert [lane["limit"]["rate_per_second"] for lane in lanes] == [limit, limit]
        assert sum(lane["share"] for lane in lanes) == pytest.approx(1.0)
        assert sum(lane["calls"] for lane in lanes) > 0
        assert [(lane["throttled"], lane["in_flight"], lane["breaker"]) for lane in lanes] == [(0, 0, "closed")] * 2


def _sample_sum(texts: list[str], name: str, **labels: str) -> float:
    """``name``'s samples with ``labels`` added up over the scraped workers."""
    return sum(
        sample.value
        for text in texts
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_metrics_match_what_was_published_delivered_and_dead_lettered(running: Running) -> None:
    """/metrics of the two workers: the validate stage committed every published event, deliveries per
    provider and state add up to the outcomes topic, the DLQ count is the DLQ's size, calls were made."""
    harness = running.harness
    outcomes = Counter(
        (o.provider, o.state)
        for o in (Outcome.model_validate_json(m.value) for m in await harness.messages(harness.catalog.outcomes))
    )
    letters = len(await harness.messages(harness.catalog.dlq))
    published = len(running.generated) + 2

    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + 30
        while True:
            texts = [(await client.get(running.url(worker) + "/metrics")).text for worker in (0, 1)]
            delivered = _sample_sum(texts, "contactsync_deliveries_total", provider="hubspot", state="delivered")
            validated = _sample_sum(texts[:1], "contactsync_stage_events_in_total", stage="validate")
            if (delivered, validated) == (outcomes["hubspot", "delivered"], published) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)

    assert (delivered, validated) == (outcomes["hubspot", "delivered"], published)
    for (provider, state), count in outcomes.items():
        assert _sample_sum(texts, "contactsync_deliveries_total", provider=provider, state=state) == count
    assert _sample_sum(texts[:1], "contactsync_dead_letters_total") == letters > 0
    assert _sample_sum(texts[:1], "contactsync_stage_lag_messages") == 0
    assert _sample_sum(texts, "contactsync_provider_calls_total", provider="mailchimp") > 0


def test_worker_logs_are_json_lines_without_terminal_escapes(running: Running) -> None:
    """A worker's log (stdout and stderr into a file) is one JSON object per line: no cursor escape or
    backspace from Faust's terminal spinner, no line each time the consumer renews its subscription."""
    for worker in running.harness.workers:
        text = worker.log_file.read_text()
        assert "\x1b" not in text and "\b" not in text, worker.log_file
        assert all(isinstance(json.loads(line), dict) for line in text.splitlines()), worker.log_file
        assert "Updating subscribed topics" not in text, worker.log_file
