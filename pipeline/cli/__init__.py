"""The ``contactsync`` command. Each command group lives in its own module of this package."""

from __future__ import annotations

import os
import sys

# rich draws typer's help panels and structlog's console tracebacks. structlog imports it whenever it
# is installed (typer requires it), and a worker then keeps its modules, ~3 MB of RSS, for its
# lifetime (benchmarks/README.md, "Eleventh session"). Without it, help and tracebacks are plain
# text; nothing of contactsync's own output changes. A process that imported rich already keeps it.
sys.modules.setdefault("rich", None)  # type: ignore[arg-type]  # None: `import rich` raises ImportError

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from pydantic_settings import SettingsError

from pipeline.errors import ConfigError
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import Settings
from pipeline.settings_env import json_problem, unknown_variables, validation_problems

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich is kept out (above)
    context_settings={"max_content_width": 120},  # a wider terminal shows more of each command's help
    help="Keep HubSpot, Salesforce and Mailchimp in sync with a contacts database.",
)


def load_settings() -> Settings:
    """Build the settings once; a bad variable becomes one line saying which and why, and a
    ``CONTACTSYNC_`` variable that no setting reads a warning line naming the nearest one."""
    for warning in unknown_variables(os.environ):
        warn(warning)
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {validation_problems(exc)}") from None
    except SettingsError as exc:  # a list or map variable that is not JSON
        raise ConfigError(f"invalid settings: {json_problem(exc, os.environ)}") from None


def warn(message: str) -> None:
    """One warning line on stderr, before logging is set up."""
    print(f"contactsync: warning: {message}", file=sys.stderr)


def load_catalog(settings: Settings) -> TopicCatalog:
    """topics.yaml under the configured prefix."""
    return TopicCatalog.load(settings.kafka.topics_file, settings.kafka.topic_prefix)


def main() -> None:
    """Entry point: run the command; a ConfigError or KafkaError is one line on stderr and exit code 2."""
    # Every command's module is imported, `worker` too, and a worker keeps what they import for its
    # lifetime: what only one command needs and weighs (psycopg 9 MB, the simulators' jsonschema 3 MB)
    # is imported inside that command.
    from pipeline.cli import (  # noqa: F401  (registers the command groups)
        admin,
        apply,
        backfill,
        connect,
        demo,
        dlq,
        kafka,
        lag,
        produce,
        replay,
        simulate,
        status,
        topics,
        worker,
    )

    try:
        app()
    except ConfigError as exc:
        print(f"contactsync: {exc}", file=sys.stderr)
        sys.exit(2)
    except KafkaError as exc:  # a broker that fails mid-command: one line too, never a traceback
        print(f"contactsync: Kafka: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
