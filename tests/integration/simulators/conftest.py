"""Fixtures for the simulator tests: fresh simulators on free ports, and clients that sign in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from pipeline.dev.simulators import RunningSimulators, SimulatorsConfig, run_simulators

HUBSPOT_TOKEN = SimulatorsConfig().hubspot.token
MAILCHIMP_KEY = SimulatorsConfig().mailchimp.api_key


@pytest.fixture
async def sims() -> AsyncIterator[RunningSimulators]:
    async with run_simulators() as running:
        yield running


@pytest.fixture
async def hubspot(sims: RunningSimulators) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
    async with httpx.AsyncClient(base_url=sims.hubspot.base_url, headers=headers) as client:
        yield client


@pytest.fixture
async def mailchimp(sims: RunningSimulators) -> AsyncIterator[httpx.AsyncClient]:
    options = {"auth": ("anyone", MAILCHIMP_KEY), "limits": httpx.Limits(max_connections=50)}
    async with httpx.AsyncClient(base_url=sims.mailchimp.base_url, **options) as client:
        yield client


@pytest.fixture
async def salesforce(sims: RunningSimulators) -> AsyncIterator[httpx.AsyncClient]:
    """A client carrying a Bearer token from the simulator's password-grant token endpoint."""
    config = sims.salesforce.config
    form = {
        "grant_type": "password",
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "username": config.username,
        "password": config.password,
    }
    async with httpx.AsyncClient(base_url=sims.salesforce.base_url) as client:
        token = (await client.post("/services/oauth2/token", data=form)).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield client

