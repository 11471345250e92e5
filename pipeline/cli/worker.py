"""``contactsync worker``: run one pipeline worker, a member of the app's consumer group."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import faust
import structlog
import typer
from pydantic import TypeAdapter, ValidationError

from pipeline.cli import app, load_catalog, load_settings
from pipeline.cli.worker_claims import check_web_port, data_dir_lock
from pipeline.errors import ConfigError
from pipeline.freed_memory import set_up_malloc
from pipeline.garbage_collection import spare_startup_objects
from pipeline.kafka import faust_internals, topic_admin
from pipeline.logging import configure_logging
from pipeline.providers import check_credentials
from pipeline.settings import Port, Settings
from pipeline.stages.source_mapping import load_source_mapping
from pipeline.webhooks.receiving import check_webhook_secrets

SHUTDOWN_SETTLE_S = 0.1  # mode's own: 1.0


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

    async def _sentinel_task(self) -> None:
        """The last step of mode's shutdown, after every service stopped and every task ended or
        was cancelled: it runs the loop once more so callbacks already scheduled (transports
        closing) run before the loop closes. mode sleeps a whole second for that, each time a
        worker stops; one pass through the loop is what the callbacks need."""
        await asyncio.sleep(SHUTDOWN_SETTLE_S)


@app.command()
def worker(
    web_port: int = typer.Option(None, help="Port of this worker's web views (default: settings.web_port)."),
) -> None:
    """Run a worker. Start several (each with its own --web-port and data dir) to share the load.

    Every setting is checked before the worker joins the group (a problem is one line and exit code 2):
    the Faust internals pipeline/kafka/ relies on, the values, each enabled provider's credentials, the
    source mapping (one line per problem), the data dir (locked for the worker's lifetime), the web
    port, and the topics against topics.yaml.
    """
    set_up_malloc()  # before any thread allocates (the checks below resolve names in asyncio's threads)
    faust_internals.require_internals()
    if web_port is not None:
        try:
            TypeAdapter(Port).validate_python(web_port)
        except ValidationError as exc:
            raise ConfigError(f"--web-port {web_port}: {exc.errors()[0]['msg']}") from None
        # the app reads its settings from the environment when it is imported, its canonical URL too
        os.environ["CONTACTSYNC_WEB_PORT"] = str(web_port)
    settings = load_settings()
    configure_logging(settings.log_level)
    check_credentials(settings.providers)
    check_webhook_secrets(settings.webhooks)
    load_source_mapping(settings.source.mapping)
    with data_dir_lock(settings.data_dir):
        check_web_port(settings.web_host, settings.web_port)
        check_topics(settings)
        if not settings.admin.api_keys:
            structlog.get_logger(__name__).warning(
                "no admin API key: the /admin endpoints and record retries refuse every request",
                setting="CONTACTSYNC_ADMIN__API_KEYS",
            )
        from pipeline.app import app as faust_app  # the app reads settings at import: only now

        spare_startup_objects()

        _Worker(
            faust_app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False
        ).execute_from_commandline()


def check_topics(settings: Settings) -> None:
    """ConfigError naming the first difference between the broker's topics and topics.yaml."""
    drift = asyncio.run(topic_admin.check(load_catalog(settings), settings.bootstrap_servers))
    if drift:
        raise ConfigError(f"{drift[0]}{f' (and {len(drift) - 1} more)' if len(drift) > 1 else ''}; "
                          "run `contactsync topics apply` first")
