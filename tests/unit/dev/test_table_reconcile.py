"""The Postgres demo's and CDC tests' verdict: what each provider holds against the table's rows."""

from __future__ import annotations

from typing import Any

import yaml

from pipeline.dev.people_table import MAPPING
from pipeline.dev.table_reconcile import expected_at_providers, reconcile_table
from pipeline.providers import build_mappers
from pipeline.settings import RoutingSettings, Settings
from pipeline.stages.source_mapping import SourceMapping

PROVIDERS = ("hubspot", "salesforce", "mailchimp")
ROW = {"person_no": 5, "mail": "a@example.com", "given": "Ada", "family": None, "org": "Acme", "job": None,
       "kind": "C", "opted_in": None, "blocked": None}
MAPPERS = build_mappers(Settings().providers)


def mapping() -> SourceMapping:
    return SourceMapping.model_validate(yaml.safe_load(MAPPING))


def at_hubspot(**fields: Any) -> dict[str, Any]:
    view = {"archived": False, "fields": {"email": "a@example.com", "firstname": "Ada", "company": "Acme", **fields}}
    return {"hubspot": {"5": view}}


def verdict(rows: list[dict[str, Any]], held: dict[str, Any]) -> Any:
    expected = expected_at_providers(rows, mapping(), RoutingSettings(), PROVIDERS)
    return reconcile_table(expected, {str(row["person_no"]) for row in rows}, held, MAPPERS)


def test_a_customer_row_held_as_the_table_has_it_is_matched() -> None:
    result = verdict([ROW], at_hubspot())
    assert (result.expected, result.matched, result.settled) == (1, 1, True)


def test_a_row_no_provider_holds_is_lost() -> None:
    assert verdict([ROW], {}).lost == [("hubspot", "5")]


def test_an_older_value_at_the_provider_is_stale_naming_the_field() -> None:
    assert verdict([ROW], at_hubspot(email="old@example.com")).stale == [("hubspot", "5", "email")]


def test_a_record_the_table_no_longer_has_but_a_provider_holds_live_is_stale() -> None:
    assert verdict([], at_hubspot()).stale == [("hubspot", "5", "deleted")]


def test_a_row_whose_type_moved_it_away_from_a_provider_is_not_stale_there() -> None:
    lead = {**ROW, "kind": "L"}  # routed to Salesforce now; HubSpot keeps what it had
    result = verdict([lead], at_hubspot(email="old@example.com"))
    assert result.stale == [] and result.lost == [("salesforce", "5")]


def test_a_view_sharing_no_field_with_the_payload_is_not_counted_as_matched() -> None:
    held = {"hubspot": {"5": {"archived": False, "fields": {"unrelated": "x"}}}}
    assert verdict([ROW], held).stale == [("hubspot", "5", "no field in common")]
