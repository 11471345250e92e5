"""``contactsync worker``: run one pipeline worker, a member of the app's consumer group."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import structlog
import typer

from pipeline.kafka import faust_internals, topic_admin
from pipeline.cli import app, load_settings
from pipeline.errors import ConfigError
from pipeline.logging import configure_logging
from pipeline.kafka.topics import TopicCatalog


class _Worker(faust.Worker):
    """Faust's worker with our logging: mode installs its own root handler, we replace it after.

    Without Faust's terminal spinner: it writes cursor escapes (``ESC[?25l``, ``ESC[?25h``) and
    backspaces to stdout even when that is a log file, and our log lines say when the worker is ready.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        configure_logging(logging.getLevelName(level))


@app.command()
def worker(
    web_port: int = typer.Option(None, help="Port of this worker's web views (default: settings.web_port)."),
) -> None:
    """Run a worker. Start several (each with its own --web-port and data dir) to share the load."""
    faust_internals.require_internals()
    settings = load_settings()
    configure_logging(settings.log_level)
    catalog = TopicCatalog.load(settings.kafka.topics_file, settings.kafka.topic_prefix)
    drift = asyncio.run(topic_admin.check(catalog, settings.bootstrap_servers))
    if drift:
        raise ConfigError(f"{drift[0]}{f' (and {len(drift) - 1} more)' if len(drift) > 1 else ''}; "
                          "run `contactsync topics apply` first")
    if not settings.admin.api_keys:
        structlog.get_logger(__name__).warning(
            "no admin API key: the /admin endpoints and record retries refuse every request",
            setting="CONTACTSYNC_ADMIN__API_KEYS",
        )
    from pipeline.app import app as faust_app  # the app reads settings at import: only now

    if web_port is not None:
        faust_app.conf.web_port = web_port
    _Worker(
        faust_app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False
    ).execute_from_commandline()
