"""``contactsync simulate``: run the provider simulators until SIGINT or SIGTERM.

Once listening it prints one JSON line on stdout, provider name to base URL, for example
``{"hubspot": "http://127.0.0.1:18081", "salesforce": "http://127.0.0.1:18082",
"mailchimp": "http://127.0.0.1:18083/3.0"}``; every simulator also serves ``{base_url}/_sim/...``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from pipeline.cli import app
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.dev.simulators.config import SimulatorsConfig


@app.command()
def simulate(
    only: Annotated[list[str] | None, typer.Option(help="Run only this provider (repeatable).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    hubspot_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 18081,
    salesforce_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 18082,
    mailchimp_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 18083,
    config: Annotated[Path | None, typer.Option(help="JSON file with a SimulatorsConfig.")] = None,
    seed: Annotated[int | None, typer.Option(help="Fault and latency seed for every provider.")] = None,
    latency_ms: Annotated[float | None, typer.Option(help="Fixed latency for every provider.")] = None,
    jitter_ms: Annotated[float | None, typer.Option(help="Latency jitter for every provider.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="provider.path=value, e.g. hubspot.faults.server_error=0.1 (value as JSON)."),
    ] = None,
) -> None:
    """Run local simulators of HubSpot, Salesforce and Mailchimp."""
    from pipeline.dev.simulators.config import PROVIDERS  # here, not at the top: jsonschema (see main)

    chosen = only or list(PROVIDERS)
    unknown = sorted(set(chosen) - set(PROVIDERS))
    if unknown:
        raise ConfigError(f"--only: unknown provider {', '.join(unknown)}; choose from {', '.join(PROVIDERS)}")
    settings = build_config(config, seed=seed, latency_ms=latency_ms, jitter_ms=jitter_ms, assignments=set_ or [])
    ports = {"hubspot": hubspot_port, "salesforce": salesforce_port, "mailchimp": mailchimp_port}
    asyncio.run(_serve(settings, chosen, host, ports))


def build_config(
    path: Path | None, *, seed: int | None, latency_ms: float | None, jitter_ms: float | None, assignments: list[str]
) -> SimulatorsConfig:
    """The config file (or defaults) with the command-line overrides applied; ConfigError if wrong."""
    from pipeline.dev.simulators.config import PROVIDERS, SimulatorsConfig, merged

    changes: dict[str, Any] = {}
    for name in PROVIDERS:
        provider: dict[str, Any] = {}
        if seed is not None:
            provider["faults"] = {"seed": seed}
        pairs = (("fixed_ms", latency_ms), ("jitter_ms", jitter_ms))
        latency = {key: value for key, value in pairs if value is not None}
        if latency:
            provider["latency"] = latency
        changes[name] = provider
    for assignment in assignments:
        _assign(changes, assignment)
    try:
        base = SimulatorsConfig.model_validate_json(path.read_text()) if path else SimulatorsConfig()
        return merged(base, changes)
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"simulator config: {exc}") from None


def _assign(changes: dict[str, Any], assignment: str) -> None:
    dotted, separator, text = assignment.partition("=")
    if not separator or "." not in dotted:
        raise ConfigError(f"--set {assignment!r}: expected provider.path=value")
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    *parents, leaf = dotted.split(".")
    node = changes
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


async def _serve(config: SimulatorsConfig, only: list[str], host: str, ports: dict[str, int]) -> None:
    from pipeline.dev.simulators.runner import run_simulators

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with run_simulators(config, only=only, host=host, ports=ports) as simulators:
            print(json.dumps(simulators.base_urls()), flush=True)
            await stop.wait()
    except OSError as exc:  # the port is taken, or the host is not ours
        raise ConfigError(f"cannot listen: {exc}") from None
