"""The simulators as a child process, the way the demo and crash tests run them."""

from __future__ import annotations

import httpx

from pipeline.dev.simulators import SimulatorsConfig, start_simulator_process


def test_child_process_reports_urls_serves_and_stops_cleanly() -> None:
    """The child reports its base URLs, serves the given config, and exits 0 on SIGTERM."""
    config = SimulatorsConfig.model_validate({"hubspot": {"requests_per_10s": 7}})
    process = start_simulator_process(config, only=["hubspot", "mailchimp"])
    try:
        assert set(process.base_urls) == {"hubspot", "mailchimp"}
        assert process.base_urls["mailchimp"].endswith("/3.0")
        served = httpx.get(f"{process.base_urls['hubspot']}/_sim/config").json()
        assert served["requests_per_10s"] == 7
        assert httpx.get(f"{process.base_urls['mailchimp']}/_sim/records").json()["provider"] == "mailchimp"
    finally:
        assert process.stop() == 0
