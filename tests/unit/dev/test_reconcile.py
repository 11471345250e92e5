"""The verdict the demo and the tests give: what each provider holds against the newest versions."""

from __future__ import annotations

from pipeline.dev.cdc_generator import ExpectedRecord
from pipeline.dev.reconcile import Miss, reconcile
from pipeline.settings import RoutingSettings

DELETED = {"r1": ExpectedRecord("r1", version=7, deleted=True, contact=None)}
LIVE_AT_HUBSPOT = {"hubspot": {"r1": {"version": "5", "archived": False}}}


def test_a_deleted_record_still_live_is_stale() -> None:
    verdict = reconcile(DELETED, LIVE_AT_HUBSPOT, RoutingSettings(), ("hubspot",))
    assert verdict.stale == [Miss("r1", "hubspot", 7, 5)] and not verdict.settled


def test_a_dead_lettered_delete_is_accounted_for_not_stale() -> None:
    verdict = reconcile(DELETED, LIVE_AT_HUBSPOT, RoutingSettings(), ("hubspot",), {("r1", "hubspot", 7)})
    assert (verdict.stale, verdict.dead_lettered) == ([], 1)


def test_a_delete_archived_everywhere_is_settled() -> None:
    archived = {"hubspot": {"r1": {"version": "7", "archived": True}}}
    assert reconcile(DELETED, archived, RoutingSettings(), ("hubspot",)).settled
