"""``contactsync admin rules|providers``: the run-time rules and provider settings of a running pipeline.

The commands ask a worker's admin endpoints (``pipeline.web.admin``) rather than write the topics
themselves: the worker checks the document against its own settings (the defaults a document
overrides), the API key decides who may change it, and the answer comes once the change is in force.
The key is the first of ``CONTACTSYNC_ADMIN__API_KEYS``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
import yaml

from pipeline.cli import app, load_settings
from pipeline.errors import ConfigError
from pipeline.ops.worker_api import ask_worker

admin = typer.Typer(no_args_is_help=True, help="Run-time rules and provider settings, through a worker.")
rules = typer.Typer(no_args_is_help=True, help="The transform stage's rules: routing and required fields.")
providers = typer.Typer(no_args_is_help=True, help="Provider lanes: endpoint, batch size, rate limit.")
admin.add_typer(rules, name="rules")
admin.add_typer(providers, name="providers")
app.add_typer(admin, name="admin")

URL_HELP = "The worker to ask (default: http://127.0.0.1:<CONTACTSYNC_WEB_PORT>)."


def call(method: str, url: str | None, path: str, body: Any = None) -> None:
    """Ask the worker and print its JSON answer."""
    settings = load_settings()
    answer = asyncio.run(ask_worker(settings.admin, method, url or f"http://127.0.0.1:{settings.web_port}", path,
                                    body=body))
    typer.echo(json.dumps(answer, indent=2))


@rules.command("show")
def rules_show(url: str = typer.Option(None, help=URL_HELP)) -> None:
    """The rules in force, and the stored document ("stored": null means the environment's rules)."""
    call("GET", url, "/admin/rules")


@rules.command("set")
def rules_set(
    file: Path = typer.Option(..., "--file", help="YAML or JSON: the fields to set; the others are the environment's."),
    url: str = typer.Option(None, help=URL_HELP),
) -> None:
    """Store new rules; every worker applies them to the next event."""
    call("PUT", url, "/admin/rules", read_document(file))


@rules.command("reset")
def rules_reset(url: str = typer.Option(None, help=URL_HELP)) -> None:
    """Remove the stored rules: the environment's apply again."""
    call("DELETE", url, "/admin/rules")


@providers.command("show")
def providers_show(
    name: str = typer.Argument(None, help="One provider (default: every enabled one)."),
    url: str = typer.Option(None, help=URL_HELP),
) -> None:
    """Each provider's settings in force (no credentials) and its stored tuning."""
    call("GET", url, f"/admin/providers/{name}" if name else "/admin/providers")


@providers.command("set")
def providers_set(
    name: str = typer.Argument(..., help="The provider: hubspot, salesforce or mailchimp."),
    rate_per_second: float = typer.Option(None, help="Requests per second, for all workers together."),
    burst: int = typer.Option(None, help="Requests that may start at once."),
    batch_size: int = typer.Option(None, help="Records per request."),
    max_in_flight: int = typer.Option(None, help="Deliveries in flight at once, per worker."),
    timeout_s: float = typer.Option(None, help="Seconds before a request times out."),
    base_url: str = typer.Option(None, help="The provider's API address."),
    url: str = typer.Option(None, help=URL_HELP),
) -> None:
    """Change some of a provider's settings; the others keep their stored or environment values."""
    change = {
        "rate_per_second": rate_per_second, "burst": burst, "batch_size": batch_size,
        "max_in_flight": max_in_flight, "timeout_s": timeout_s, "base_url": base_url,
    }
    given = {field: value for field, value in change.items() if value is not None}
    if not given:
        options = ", ".join(f"--{f.replace('_', '-')}" for f in change)
        raise ConfigError(f"nothing to set: give at least one of {options}")
    call("PATCH", url, f"/admin/providers/{name}", given)


@providers.command("reset")
def providers_reset(
    name: str = typer.Argument(..., help="The provider."),
    url: str = typer.Option(None, help=URL_HELP),
) -> None:
    """Remove a provider's stored tuning: its environment settings apply again."""
    call("DELETE", url, f"/admin/providers/{name}")


def read_document(file: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not YAML or JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{file} must hold a mapping of rule fields, e.g. required_fields: [email, phone]")
    return document
