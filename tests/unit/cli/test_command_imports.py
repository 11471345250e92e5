"""What every ``contactsync`` command, ``worker`` too, imports before it runs."""

from __future__ import annotations

import subprocess
import sys

IMPORT_EVERY_COMMAND = """
import pkgutil, sys
import pipeline.cli
for module in pkgutil.iter_modules(pipeline.cli.__path__):
    __import__(f"pipeline.cli.{module.name}")
import httpx, structlog  # a worker's logging and its providers' HTTP; each imports rich where it can
print(" ".join(name for name in ("psycopg", "jsonschema", "rich") if sys.modules.get(name) is not None))
"""


def test_command_modules_leave_postgres_the_simulators_and_rich_out() -> None:
    """Importing every command's module (as ``contactsync worker`` does), then what a worker logs and
    sends with, imports neither psycopg, nor jsonschema, nor rich: a worker would carry them, 15 MB,
    for its lifetime."""
    found = subprocess.run(  # a fresh interpreter: this one has imported what other tests needed
        [sys.executable, "-c", IMPORT_EVERY_COMMAND], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == []
