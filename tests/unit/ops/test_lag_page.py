"""The lag page: a self-contained HTML document with the table and a chart of the stages that lagged."""

from __future__ import annotations

import re

from pipeline.ops.lag import LagSampler, PartitionLag
from pipeline.ops.lag_page import render_lag_page


def _sampler_with_lag_on_route() -> LagSampler:
    sampler = LagSampler("contactsync")
    for at, end in ((0.0, 10), (60.0, 40), (120.0, 25)):
        readings = [PartitionLag("validate", "contacts.cdc", 0, 5, 0, 5),
                    PartitionLag("route", "contacts.transformed", 0, 10, 0, end)]
        sampler.observe(readings, now=1_700_000_000 + at)
    return sampler


def test_page_shows_each_stage_and_charts_only_stages_that_lagged() -> None:
    """Every stage is a table row, and the chart has one line (with a legend entry) per stage that lagged."""
    sampler = _sampler_with_lag_on_route()
    assert sampler.latest is not None

    page = render_lag_page(sampler.latest, list(sampler.history))

    assert "<td>validate</td>" in page and "<td>route</td>" in page and "15 messages behind" in page
    assert page.count("<polyline") == 1 and "<i style=\"background:#1f77b4\"></i>route</span>" in page
    assert not re.search(r"(src|href)=", page), "no external assets"


def test_page_without_lag_draws_one_flat_line() -> None:
    """When no stage lags, the chart is a single line at zero labelled as such."""
    sampler = LagSampler("contactsync")
    report = sampler.observe([PartitionLag("validate", "contacts.cdc", 0, 5, 0, 5)], now=10.0)

    page = render_lag_page(report, list(sampler.history))

    assert page.count("<polyline") == 1 and "all stages (no lag)" in page and "0 messages behind" in page
